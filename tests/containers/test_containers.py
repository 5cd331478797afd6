"""Checks of containers/ and infra/ that need neither Docker nor Azure: the scripts' behaviour,
version pins, and that every SQLEMBED_* variable the images and Bicep set is a real setting."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from sqlembed.settings import Settings
from sqlembed.spark.session import discovery_script

ROOT = Path(__file__).parents[2]
C = ROOT / "containers"
# Variables that scripts read themselves (documented in containers/README.md), not service settings.
SCRIPT_VARS = {"SQLEMBED_ENTRYPOINT_DRY_RUN", "SQLEMBED_SWITCH_NO_RESTART", "SQLEMBED_START_SPARK_MASTER",
               "SQLEMBED_GPU_ADDRESSES", "SQLEMBED_STACK_DIR", "SQLEMBED_API_KEY", "SQLEMBED_MSSQL_PORT"}


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(C / script), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, timeout=30)


@pytest.mark.parametrize(("mode", "expected"), [("trigger", "mode=trigger"), ("jupyter", "mode=jupyter"),
                                                 (None, "mode=trigger")])
def test_entrypoint_selects_the_mode(tmp_path: Path, mode: str | None, expected: str) -> None:
    env = {"SQLEMBED_ENTRYPOINT_DRY_RUN": "1", "SQLEMBED_STATE_DIR": str(tmp_path)}
    if mode:
        env["APP_MODE"] = mode
    r = _run("common/entrypoint.sh", env=env)
    assert r.returncode == 0 and r.stdout.strip() == expected


def test_entrypoint_refuses_a_bad_mode(tmp_path: Path) -> None:
    r = _run("common/entrypoint.sh", env={"APP_MODE": "notebook", "SQLEMBED_ENTRYPOINT_DRY_RUN": "1",
                                          "SQLEMBED_STATE_DIR": str(tmp_path)})
    assert r.returncode == 64 and "APP_MODE must be 'trigger' or 'jupyter'" in r.stderr


def test_switch_modes_then_entrypoint_follows(tmp_path: Path) -> None:
    env = {"SQLEMBED_STATE_DIR": str(tmp_path), "SQLEMBED_SWITCH_NO_RESTART": "1"}
    r = _run("common/switch-modes.sh", "jupyter", env=env)
    assert r.returncode == 0 and (tmp_path / "app_mode").read_text().strip() == "jupyter"
    r = _run("common/entrypoint.sh", env={**env, "APP_MODE": "trigger", "SQLEMBED_ENTRYPOINT_DRY_RUN": "1"})
    assert r.stdout.strip() == "mode=jupyter", "the recorded mode wins over the image default"
    bad = _run("common/switch-modes.sh", "lab", env=env)
    assert bad.returncode == 64 and "usage" in bad.stderr
    assert (tmp_path / "app_mode").read_text().strip() == "jupyter", "a bad call changes nothing"


@pytest.mark.parametrize(("nvidia_smi", "expected"), [
    (None, []),
    ("exit 0", []),
    ("echo 0", ["0"]),
    ("printf '0\\n1\\n2\\n3\\n'", ["0", "1", "2", "3"]),
    ("echo 'NVIDIA-SMI has failed' >&2; exit 9", []),
])
def test_gpu_discovery(tmp_path: Path, nvidia_smi: str | None, expected: list[str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if nvidia_smi is not None:
        fake = bin_dir / "nvidia-smi"
        fake.write_text(f"#!/bin/bash\n{nvidia_smi}\n")
        fake.chmod(0o755)
    r = subprocess.run(["bash", str(discovery_script())], capture_output=True, text=True,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"name": "gpu", "addresses": expected}


def test_gpu_discovery_override() -> None:
    r = subprocess.run(["bash", str(discovery_script())], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "SQLEMBED_GPU_ADDRESSES": "2,5"})
    assert json.loads(r.stdout)["addresses"] == ["2", "5"]


def test_the_discovery_script_ships_in_the_package_and_is_executable() -> None:
    import os

    from sqlembed.spark.session import spark_conf

    path = discovery_script()
    assert path.is_file() and os.access(path, os.X_OK)
    assert path.parent.name == "spark" and path.parent.parent.name == "sqlembed", "found from the package"
    assert spark_conf("local[1]", gpu=True)["spark.executor.resource.gpu.discoveryScript"] == str(path)


def test_dockerfile_pins_match_versions_env() -> None:
    pins = dict(line.split("=", 1) for line in (C / "versions.env").read_text().splitlines()
                if line and not line.startswith("#"))
    for dockerfile in C.glob("*/Dockerfile"):
        for name, default in re.findall(r"^ARG (\w+)=(\S+)$", dockerfile.read_text(), re.M):
            assert pins.get(name) == default, f"{dockerfile.relative_to(ROOT)}: ARG {name}={default} vs versions.env"


def test_dockerfiles_follow_the_rules() -> None:
    for dockerfile in C.glob("*/Dockerfile"):
        text = dockerfile.read_text()
        assert re.search(r"^USER 10001$", text, re.M), f"{dockerfile}: non-root user"
        assert "HEALTHCHECK" in text
        # Dependencies before code: the heavy layer is cached across code changes.
        assert text.index("install_deps.py") < text.index("COPY python/ python/")
        assert not re.search(r"(PASSWORD|SECRET|API_KEY)\s*=", text), "no secrets baked in"


def _env_names() -> set[str]:
    names: set[str] = set()
    texts = [p.read_text() for p in [*C.rglob("*.sh"), *C.rglob("Dockerfile"), *C.rglob("*.yaml"),
                                      *(ROOT / "infra").rglob("*.bicep")]]
    for text in texts:
        names |= set(re.findall(r"\b(SQLEMBED_[A-Z0-9_]+)\b", text))
    return names


def test_every_sqlembed_variable_is_a_setting() -> None:
    fields = {f"SQLEMBED_{name.upper()}" for name in Settings.model_fields}
    names = _env_names()
    assert {"SQLEMBED_API_KEYS", "SQLEMBED_DATABASES", "SQLEMBED_SPARK_MASTER", "SQLEMBED_SCALE_MAX_WORKERS"} <= names
    unknown = names - fields - SCRIPT_VARS
    assert not unknown, f"not settings: {sorted(unknown)}"
    readme = (C / "README.md").read_text()
    for name in SCRIPT_VARS - {"SQLEMBED_API_KEY"}:
        assert name in readme, f"{name} is not documented in containers/README.md"


def test_compose_and_azd_reference_real_files() -> None:
    compose = yaml.safe_load((C / "compose.yaml").read_text())
    services = compose["services"]
    assert {"mssql", "master", "worker", "worker-gpu", "tls-init", "model-init"} <= set(services)
    for svc in services.values():
        build = svc.get("build")
        if build:
            assert (C / build["context"] / build["dockerfile"]).is_file()
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    azd = yaml.safe_load((ROOT / "azure.yaml").read_text())
    for svc in azd["services"].values():
        assert (ROOT / svc["docker"]["path"]).is_file()
    for bicep in (ROOT / "infra").rglob("*.bicep"):
        for module in re.findall(r"^module \w+ '([^']+)'", bicep.read_text(), re.M):
            assert (bicep.parent / module).is_file(), f"{bicep}: module {module} missing"


def test_infra_shape() -> None:
    main = (ROOT / "infra" / "main.bicep").read_text()
    assert not re.search(r"^resource (?!rg\b)", main, re.M), "main.bicep composes modules only"
    env = (ROOT / "infra/core/host/container-apps-environment.bicep").read_text()
    assert "'Consumption-GPU-NC24-A100'" in env and "workloadProfileType: 'Consumption'" in env
    master = (ROOT / "infra/app/master.bicep").read_text()
    assert "minReplicas: 1, maxReplicas: 1" in master
    assert "exposedPort: 7077" in master and "exposedPort: 8080" in master
    worker = (ROOT / "infra/app/worker-gpu.bicep").read_text()
    assert "minReplicas: 0" in worker and "type: 'metrics-api'" in worker and "/v1/scale" in worker
    for path in (ROOT / "infra").rglob("*.bicep"):
        text = path.read_text()
        assert "keyVaultUrl" in text or "secretRef" not in text, f"{path}: secrets come from Key Vault"
        assert not re.search(r"(password|accountKey)\s*:\s*'[^']+'", text, re.I), f"{path}: inline credential"
