#!/usr/bin/env bash
# Spark GPU discovery script (spark.{executor,worker}.resource.gpu.discoveryScript): prints
# {"name": "gpu", "addresses": [...]} for the GPUs this container sees: none, one or many.
# SQLEMBED_GPU_ADDRESSES (comma-separated) overrides detection, e.g. for tests or MIG slices.
set -euo pipefail
if [[ -n "${SQLEMBED_GPU_ADDRESSES:-}" ]]; then
  addrs="${SQLEMBED_GPU_ADDRESSES}"
elif command -v nvidia-smi >/dev/null 2>&1; then
  addrs=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | paste -sd, - || true)
else
  addrs=""
fi
json=""
IFS=',' read -r -a list <<< "${addrs}"
for a in "${list[@]}"; do
  [[ -z "$a" ]] && continue
  json+="${json:+,}\"${a}\""
done
printf '{"name": "gpu", "addresses": [%s]}\n' "${json}"
