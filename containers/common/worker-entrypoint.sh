#!/usr/bin/env bash
# Spark worker: registers with the master and offers its GPUs (discovered by getGpusResources.sh).
set -euo pipefail
master="${SPARK_MASTER_URL:?SPARK_MASTER_URL is required, e.g. spark://master:7077}"
# The discovery script ships inside the sqlembed package: found from the package, not a path.
discovery="$(python3 -c 'import sqlembed.spark.session as s; print(s.discovery_script())')"
gpus="$("${discovery}" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["addresses"]))')"
opts=()
if [[ "${gpus}" -gt 0 ]]; then
  opts=(-Dspark.worker.resource.gpu.amount="${gpus}" -Dspark.worker.resource.gpu.discoveryScript="${discovery}")
fi
export SPARK_WORKER_OPTS="${SPARK_WORKER_OPTS:-} ${opts[*]:-}"
exec "${SPARK_HOME}/bin/spark-class" org.apache.spark.deploy.worker.Worker "${master}" \
  --cores "${SPARK_WORKER_CORES:-$(nproc)}" --memory "${SPARK_WORKER_MEMORY:-8g}" --webui-port 8081
