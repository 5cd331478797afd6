#!/usr/bin/env bash
# Container entrypoint for the master image.
#   APP_MODE=trigger (default): Spark master + the sqlembed service on :8888 (long-lived SparkSession)
#   APP_MODE=jupyter:           Spark master + JupyterLab on :8888 (token required), same volume and code
# SQLEMBED_* settings pass through to the service untouched.
set -euo pipefail

mode="${APP_MODE:-trigger}"
state_dir="${SQLEMBED_STATE_DIR:-/data/state}"
mode_file="${state_dir}/app_mode"
# switch-modes.sh records a mode on the shared volume; it wins over the image's default.
if [[ -f "${mode_file}" ]]; then
  mode="$(tr -d '[:space:]' < "${mode_file}")"
fi

case "${mode}" in
  trigger|jupyter) ;;
  *)
    echo "entrypoint: APP_MODE must be 'trigger' or 'jupyter', got '${mode}'" >&2
    exit 64
    ;;
esac

if [[ "${SQLEMBED_ENTRYPOINT_DRY_RUN:-0}" == "1" ]]; then
  # Tests: say what would run, run nothing.
  echo "mode=${mode}"
  exit 0
fi

start_spark_master() {
  "${SPARK_HOME}/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host 0.0.0.0 --port "${SPARK_MASTER_PORT:-7077}" --webui-port "${SPARK_MASTER_WEBUI_PORT:-8080}" &
}

if [[ "${SQLEMBED_START_SPARK_MASTER:-true}" == "true" ]]; then
  start_spark_master
fi

if [[ "${mode}" == "jupyter" ]]; then
  if [[ -z "${JUPYTER_TOKEN:-}" ]]; then
    echo "entrypoint: APP_MODE=jupyter needs JUPYTER_TOKEN (no token, no notebook server)" >&2
    exit 65
  fi
  exec jupyter lab --ip=0.0.0.0 --port=8888 --no-browser --ServerApp.root_dir=/data \
    --IdentityProvider.token="${JUPYTER_TOKEN}"
fi

# Models are built ahead of time onto the share (init step); build_on_start covers a first local run.
exec sqlembed serve --host 0.0.0.0 --port 8888 \
  ${SQLEMBED_TLS_CERT:+--tls-cert "${SQLEMBED_TLS_CERT}"} ${SQLEMBED_TLS_KEY:+--tls-key "${SQLEMBED_TLS_KEY}"}
