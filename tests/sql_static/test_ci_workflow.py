"""The public-CI workflow that runs the real-server suite is valid YAML, names the suite, and runs
it against the official SQL Server 2025 image as a service container."""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).parents[2] / ".github" / "workflows" / "mssql.yml"


def test_workflow_runs_the_mssql_suite_against_sql_server_2025() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    assert {"push", "pull_request"} <= set(doc[True] if True in doc else doc["on"])  # YAML 1.1 reads `on` as True
    job = doc["jobs"]["mssql"]
    service = job["services"]["mssql"]
    assert service["image"].startswith("mcr.microsoft.com/mssql/server:2025")
    assert service["env"]["ACCEPT_EULA"] == "Y" and "MSSQL_SA_PASSWORD" in service["env"]
    assert "host.docker.internal:host-gateway" in service["options"]
    assert any(v.endswith(":/var/opt/mssql/security/ca-certificates:ro") for v in service["volumes"])
    runs = [s for s in job["steps"] if "run" in s]
    suite = next(s for s in runs if "pytest -m mssql tests/mssql" in s["run"])
    assert "SQLEMBED_TEST_MSSQL_DSN" in suite["env"] and "job.services.mssql.ports['1433']" in \
        suite["env"]["SQLEMBED_TEST_MSSQL_DSN"]
    assert "Driver=" not in suite["env"]["SQLEMBED_TEST_MSSQL_DSN"], "mssql-python refuses Driver="
    assert any("docker restart" in s["run"] for s in runs), "SQL Server reads extra CAs only at start-up"
    assert any("skipped == total" in s["run"] for s in runs), "a run that skipped everything fails"
