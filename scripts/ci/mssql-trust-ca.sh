#!/usr/bin/env bash
# Make the SQL Server service container of .github/workflows/mssql.yml trust a test CA, and say on
# which host port it listens afterwards.
#
# usage: mssql-trust-ca.sh CONTAINER_ID CA_FILE CA_DIR
#   CONTAINER_ID  the service container (job.services.mssql.id)
#   CA_FILE       the PEM CA certificate to trust
#   CA_DIR        the host side of the bind mount on /var/opt/mssql/security/ca-certificates
# env:
#   GITHUB_ENV          (required) file that receives MSSQL_PORT=<host port> for later steps
#   MSSQL_HEALTH_TRIES  health polls after the restart (default 60)
#   MSSQL_HEALTH_SLEEP  seconds between polls (default 3; the tests use 0)
#
# Steps, in this order, because each one depends on the one before:
#   1. install CA_FILE as CA_DIR/sqlembed-ca.crt, mode 0644 (sudo only where CA_DIR is not ours:
#      on the runner Docker created it, as root, when the service started);
#   2. docker restart: SQL Server reads extra CAs only at start-up;
#   3. wait for the container's health check to report healthy again (bounded; on timeout print the
#      last 200 log lines and fail);
#   4. read the published host port of 1433/tcp NOW: the service has `ports: - 1433` (no host
#      side), and Docker allocates such an ephemeral host port each time the container starts, so
#      the port in job.services.mssql.ports (read when the job started) may be stale after step 2;
#   5. check the container resolves host.docker.internal (the tests' HTTPS service on the runner);
#   6. append MSSQL_PORT=<port> to GITHUB_ENV.
# It never sees or prints the SA password.
set -euo pipefail

die() { printf 'mssql-trust-ca: %s\n' "$*" >&2; exit 1; }

[ "$#" -eq 3 ] || die "usage: mssql-trust-ca.sh CONTAINER_ID CA_FILE CA_DIR (got $# arguments)"
container="$1"
ca_file="$2"
ca_dir="$3"
tries="${MSSQL_HEALTH_TRIES:-60}"
pause="${MSSQL_HEALTH_SLEEP:-3}"

[ -n "$container" ] || die "empty container id (is job.services.mssql.id set?)"
if [ ! -f "$ca_file" ] || [ ! -r "$ca_file" ]; then die "CA file not found or unreadable: $ca_file"; fi
[ -d "$ca_dir" ] || die "CA dir not found: $ca_dir (it must be the host side of the service's bind mount)"
[ -n "${GITHUB_ENV:-}" ] || die "GITHUB_ENV is not set: nowhere to write MSSQL_PORT for later steps"
[[ "$tries" =~ ^[1-9][0-9]*$ ]] || die "MSSQL_HEALTH_TRIES must be a positive integer, got '$tries'"
[[ "$pause" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "MSSQL_HEALTH_SLEEP must be a number of seconds, got '$pause'"

# 1. The CA, world-readable: SQL Server in the container does not run as the runner's user.
dest="$ca_dir/sqlembed-ca.crt"
if [ -w "$ca_dir" ]; then
    install -m 0644 "$ca_file" "$dest"
else
    sudo -n install -m 0644 "$ca_file" "$dest" || die "cannot write $dest (not writable, and sudo -n failed)"
fi
echo "installed $ca_file as $dest (0644)"

# 2. Restart so that SQL Server reads it.
echo "restarting $container (SQL Server reads extra CAs only at start-up)"
docker restart "$container" >/dev/null || die "docker restart $container failed"

# 3. Docker resets the health status to 'starting' on every start; wait for 'healthy'.
status=unknown
for ((i = 1; i <= tries; i++)); do
    if ! status="$(docker inspect -f '{{.State.Health.Status}}' "$container")"; then
        status="(docker inspect failed)"
    fi
    [ "$status" = healthy ] && break
    sleep "$pause"
done
echo "health after restart: $status"
if [ "$status" != healthy ]; then
    echo "mssql-trust-ca: $container not healthy after $tries polls ${pause}s apart; its last 200 log lines:" >&2
    docker logs --tail 200 "$container" >&2 || true
    exit 1
fi

# 4. The host port, read after the restart. `docker port` prints one line per host address, e.g.
#    0.0.0.0:49217 and [::]:49217; take the IPv4 one (the DSN says 127.0.0.1), else the first.
mapping="$(docker port "$container" 1433/tcp)" || die "docker port $container 1433/tcp failed"
line="$(printf '%s\n' "$mapping" | grep -m1 -v '^\[' || true)"
[ -n "$line" ] || line="$(printf '%s\n' "$mapping" | head -n1)"
port="${line##*:}"
if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
    die "no host port for 1433/tcp in 'docker port' output: '$mapping'"
fi
echo "1433/tcp is published on host port $port after the restart"

# 5. SQL Server must reach the service the tests start on the runner (--add-host ...:host-gateway).
docker exec "$container" getent hosts host.docker.internal ||
    die "$container does not resolve host.docker.internal (the service needs --add-host=host.docker.internal:host-gateway)"

# 6. For the later steps.
printf 'MSSQL_PORT=%s\n' "$port" >>"$GITHUB_ENV"
