#!/usr/bin/env bash
# Flip a running master between the sqlembed service and JupyterLab:
#   switch-modes.sh trigger|jupyter
# Records the mode on the shared volume and stops PID 1, so the container restarts in that mode
# (Container Apps and compose restart it; the volume keeps models, engines and job state).
set -euo pipefail

mode="${1:-}"
case "${mode}" in
  trigger|jupyter) ;;
  *)
    echo "usage: switch-modes.sh trigger|jupyter (got '${mode}')" >&2
    exit 64
    ;;
esac
state_dir="${SQLEMBED_STATE_DIR:-/data/state}"
mkdir -p "${state_dir}"
printf '%s\n' "${mode}" > "${state_dir}/app_mode"
echo "switch-modes: next start runs APP_MODE=${mode}"
if [[ "${SQLEMBED_SWITCH_NO_RESTART:-0}" != "1" ]]; then
  kill -TERM 1
fi
