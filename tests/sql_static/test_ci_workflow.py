"""The public-CI workflow that runs the real-server suite is valid YAML, names the suite, and runs
it against the official SQL Server 2025 image as a service container; and the two scripts it runs
around the container's restart (scripts/ci/) do what the workflow relies on, run here against a
fake `docker` that publishes 1433 on a different host port after `docker restart`, as Docker may."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "mssql.yml"
TRUST_CA = ROOT / "scripts" / "ci" / "mssql-trust-ca.sh"
DSN = ROOT / "scripts" / "ci" / "mssql-dsn.sh"
PASSWORD = "Sqlembed-CI-2025-Passw0rd"  # the workflow's throwaway SA password
CONTAINER = "c0ffee1433"

# Records each call (one line, arguments separated by spaces) and answers like Docker would:
# `port` gives 49153 until `restart` was called, 49217 after it (IPv4 and IPv6 lines), or
# $FAKE_DOCKER_PORTS where set.
FAKE_DOCKER = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_DOCKER_LOG"
case "$1" in
  restart) : > "$FAKE_DOCKER_LOG.restarted"; echo "$2" ;;
  inspect) echo "${FAKE_DOCKER_HEALTH:-healthy}" ;;
  port)
    if [ -n "${FAKE_DOCKER_PORTS+set}" ]; then printf '%s' "$FAKE_DOCKER_PORTS"
    elif [ -e "$FAKE_DOCKER_LOG.restarted" ]; then printf '0.0.0.0:49217\n[::]:49217\n'
    else printf '0.0.0.0:49153\n[::]:49153\n'; fi ;;
  exec) [ "$3 $4 $5" = "getent hosts host.docker.internal" ] && echo "172.17.0.1      host.docker.internal" ;;
  logs) echo "fake errorlog: Recovery is complete." ;;
  *) echo "fake docker: unexpected: $*" >&2; exit 2 ;;
esac
"""

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="the CI scripts are bash")


def _workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    return doc


def test_workflow_runs_the_mssql_suite_against_sql_server_2025() -> None:
    doc = _workflow()
    assert {"push", "pull_request"} <= set(doc[True] if True in doc else doc["on"])  # YAML 1.1 reads `on` as True
    job = doc["jobs"]["mssql"]
    service = job["services"]["mssql"]
    assert service["image"].startswith("mcr.microsoft.com/mssql/server:2025")
    assert service["env"]["ACCEPT_EULA"] == "Y" and "MSSQL_SA_PASSWORD" in service["env"]
    assert "host.docker.internal:host-gateway" in service["options"]
    assert "--health-cmd" in service["options"], "mssql-trust-ca.sh waits on the container's health check"
    assert any(v.endswith(":/var/opt/mssql/security/ca-certificates:ro") for v in service["volumes"])
    assert any(v.startswith(doc["env"]["MSSQL_CA_DIR"] + ":") for v in service["volumes"]), \
        "the script installs the CA into MSSQL_CA_DIR, which must be the bind mount's host side"
    runs = [s for s in job["steps"] if "run" in s]
    assert any("skipped == total" in s["run"] for s in runs), "a run that skipped everything fails"
    assert any("docker logs" in s["run"] and s.get("if") == "failure()" for s in runs)
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in job["steps"])
    assert "docker restart" in TRUST_CA.read_text("utf-8"), "SQL Server reads extra CAs only at start-up"


def test_workflow_builds_the_dsn_after_the_restart_from_the_scripts() -> None:
    steps = _workflow()["jobs"]["mssql"]["steps"]

    def index(needle: str) -> int:
        found = [i for i, s in enumerate(steps) if needle in s.get("run", "")]
        assert len(found) == 1, f"one step runs {needle!r}, found {len(found)}"
        return found[0]

    trust, dsn, suite = index("scripts/ci/mssql-trust-ca.sh"), index("scripts/ci/mssql-dsn.sh"), \
        index("pytest -m mssql tests/mssql")
    assert trust < dsn < suite, "restart and port, then the DSN, then the suite"
    assert "job.services.mssql.id" in steps[trust]["env"]["MSSQL_ID"]
    assert '"$MSSQL_CA_DIR"' in steps[trust]["run"] and "ca.crt" in steps[trust]["run"]
    # The suite inherits SQLEMBED_TEST_MSSQL_DSN from $GITHUB_ENV; no step takes a port from
    # job.services.mssql.ports, which is filled when the job starts, before the restart.
    assert "SQLEMBED_TEST_MSSQL_DSN" not in steps[suite].get("env", {})
    for step in steps:
        assert "job.services.mssql.ports" not in yaml.safe_dump(step), step.get("name")
    for script in (TRUST_CA, DSN):
        text = script.read_text("utf-8")
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER, "utf-8")
    docker.chmod(0o755)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "utf-8")
    ca.chmod(0o600)  # the installed copy must be 0644 whatever the source's mode
    ca_dir = tmp_path / "ca-dir"
    ca_dir.mkdir()
    github_env = tmp_path / "github_env"
    github_env.touch()
    log = tmp_path / "docker.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GITHUB_ENV": str(github_env),
        "FAKE_DOCKER_LOG": str(log),
        "MSSQL_SA_PASSWORD": PASSWORD,  # as on the runner: in every step's environment
        "MSSQL_HEALTH_SLEEP": "0",
        "MSSQL_HEALTH_TRIES": "3",
    }
    return {"env": env, "ca": ca, "ca_dir": ca_dir, "github_env": github_env, "log": log}


def _run(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=20,
                          check=False)


def _github_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text("utf-8").splitlines())


@needs_bash
def test_trust_ca_then_dsn_use_the_port_published_after_the_restart(fake: dict[str, Any]) -> None:
    env, log = fake["env"], fake["log"]
    trusted = _run(TRUST_CA, env, CONTAINER, str(fake["ca"]), str(fake["ca_dir"]))
    assert trusted.returncode == 0, trusted.stderr
    assert _github_env(fake["github_env"]) == {"MSSQL_PORT": "49217"}  # not 49153, the port before

    installed = fake["ca_dir"] / "sqlembed-ca.crt"
    assert installed.read_bytes() == fake["ca"].read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644

    calls = [line.split() for line in log.read_text("utf-8").splitlines()]
    verbs = [c[0] for c in calls]
    assert calls[verbs.index("restart")] == ["restart", CONTAINER]
    assert verbs.index("restart") < verbs.index("inspect") < verbs.index("port") < verbs.index("exec")
    assert verbs.count("restart") == 1 and "port" not in verbs[: verbs.index("restart")]
    assert calls[verbs.index("port")] == ["port", CONTAINER, "1433/tcp"]
    assert ["exec", CONTAINER, "getent", "hosts", "host.docker.internal"] in calls

    # The runner puts GITHUB_ENV's entries into the next step's environment.
    built = _run(DSN, {**env, **_github_env(fake["github_env"])})
    assert built.returncode == 0, built.stderr
    dsn = _github_env(fake["github_env"])["SQLEMBED_TEST_MSSQL_DSN"]
    assert dsn == f"Server=127.0.0.1,49217;UID=sa;PWD={PASSWORD};Encrypt=yes;TrustServerCertificate=yes"
    assert "Driver=" not in dsn, "mssql-python refuses Driver="
    assert "PWD=***" in built.stdout
    for out in (trusted.stdout, trusted.stderr, built.stdout, built.stderr):
        assert PASSWORD not in out


@needs_bash
@pytest.mark.parametrize(("answer", "port"), [
    ("[::]:50001\n0.0.0.0:50002\n", "50002"),  # the IPv4 line: the DSN says 127.0.0.1
    ("[::]:50003\n", "50003"),
    ("127.0.0.1:50004\n", "50004"),
    ("", None),
    ("0.0.0.0:\n", None),
])
def test_trust_ca_reads_the_port_from_docker_port_output(fake: dict[str, Any], answer: str, port: str | None) -> None:
    result = _run(TRUST_CA, {**fake["env"], "FAKE_DOCKER_PORTS": answer}, CONTAINER, str(fake["ca"]),
                  str(fake["ca_dir"]))
    if port is None:
        assert result.returncode != 0 and "no host port for 1433/tcp" in result.stderr
        assert fake["github_env"].read_text("utf-8") == ""
    else:
        assert result.returncode == 0, result.stderr
        assert _github_env(fake["github_env"]) == {"MSSQL_PORT": port}


@needs_bash
def test_trust_ca_fails_after_a_bounded_wait_and_shows_the_logs(fake: dict[str, Any]) -> None:
    env = {**fake["env"], "FAKE_DOCKER_HEALTH": "starting"}
    result = _run(TRUST_CA, env, CONTAINER, str(fake["ca"]), str(fake["ca_dir"]))
    assert result.returncode != 0
    calls = fake["log"].read_text("utf-8").splitlines()
    assert sum(c.startswith("inspect ") for c in calls) == 3  # MSSQL_HEALTH_TRIES
    assert f"logs --tail 200 {CONTAINER}" in calls
    assert not any(c.startswith("port ") for c in calls)
    assert "not healthy after 3 polls" in result.stderr and "fake errorlog" in result.stderr
    assert fake["github_env"].read_text("utf-8") == ""
    assert PASSWORD not in result.stdout + result.stderr


@needs_bash
@pytest.mark.parametrize(("args", "message"), [
    ((CONTAINER, "/nonexistent/ca.crt", "{ca_dir}"), "CA file not found"),
    ((CONTAINER, "{ca}", "/nonexistent/dir"), "CA dir not found"),
    ((CONTAINER, "{ca}"), "usage:"),
])
def test_trust_ca_refuses_bad_arguments_before_touching_docker(fake: dict[str, Any], args: tuple[str, ...],
                                                               message: str) -> None:
    argv = [a.format(ca=fake["ca"], ca_dir=fake["ca_dir"]) for a in args]
    result = _run(TRUST_CA, fake["env"], *argv)
    assert result.returncode != 0 and message in result.stderr
    assert not fake["log"].exists()


@needs_bash
@pytest.mark.parametrize(("port", "password", "message"), [
    ("", PASSWORD, "MSSQL_PORT is empty"),
    ("abc", PASSWORD, "not a TCP port"),
    ("1433;x", PASSWORD, "not a TCP port"),
    ("0", PASSWORD, "not a TCP port"),
    ("65536", PASSWORD, "not a TCP port"),
    ("9" * 30, PASSWORD, "not a TCP port"),
    ("49217", "", "MSSQL_SA_PASSWORD is empty"),
    ("49217", "Pw;Driver={x}1", "value not shown"),
    ("49217", "Pw\nEVIL=1", "value not shown"),
])
def test_dsn_refuses_a_bad_port_or_password_without_printing_it(fake: dict[str, Any], port: str, password: str,
                                                                 message: str) -> None:
    result = _run(DSN, {**fake["env"], "MSSQL_PORT": port, "MSSQL_SA_PASSWORD": password})
    assert result.returncode != 0 and message in result.stderr
    assert fake["github_env"].read_text("utf-8") == ""
    if password:
        assert password not in result.stdout + result.stderr
