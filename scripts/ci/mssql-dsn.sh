#!/usr/bin/env bash
# Build the suite's ODBC connection string from the port mssql-trust-ca.sh found after the restart
# and hand it to later steps: appends SQLEMBED_TEST_MSSQL_DSN=... to GITHUB_ENV.
#
# env: MSSQL_PORT (from mssql-trust-ca.sh via GITHUB_ENV), MSSQL_SA_PASSWORD, GITHUB_ENV.
# DSN: Server=127.0.0.1,<port>;UID=sa;PWD=<pw>;Encrypt=yes;TrustServerCertificate=yes
#   (no Driver= key: mssql-python refuses it).
#
# Bash rather than Python: it runs next to mssql-trust-ca.sh, under the same tests, with one
# validation and one printf; and the password then only ever travels in environment variables and
# the GITHUB_ENV file, never on a command line. It is never printed: the log shows PWD=***.
set -euo pipefail

die() { printf 'mssql-dsn: %s\n' "$*" >&2; exit 1; }

port="${MSSQL_PORT:-}"
password="${MSSQL_SA_PASSWORD:-}"
[ -n "${GITHUB_ENV:-}" ] || die "GITHUB_ENV is not set: nowhere to write SQLEMBED_TEST_MSSQL_DSN"
[ -n "$port" ] || die "MSSQL_PORT is empty (mssql-trust-ca.sh writes it to GITHUB_ENV; did that step run?)"
if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
    die "MSSQL_PORT is not a TCP port: '$port'"
fi
[ -n "$password" ] || die "MSSQL_SA_PASSWORD is empty"
# ; { } would need ODBC brace quoting, and a line break would end the GITHUB_ENV entry early.
case "$password" in
    *[';{}']* | *$'\n'* | *$'\r'*) die "MSSQL_SA_PASSWORD contains ; { } or a line break (value not shown)" ;;
esac

prefix="Server=127.0.0.1,$((10#$port));UID=sa;PWD="
suffix=";Encrypt=yes;TrustServerCertificate=yes"
printf 'SQLEMBED_TEST_MSSQL_DSN=%s%s%s\n' "$prefix" "$password" "$suffix" >>"$GITHUB_ENV"
echo "SQLEMBED_TEST_MSSQL_DSN=${prefix}***${suffix} (for the later steps)"
