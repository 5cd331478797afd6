"""Install a pyproject's dependencies (and chosen extras) without the code, so the image layer
with the heavy dependencies is cached across code changes."""

import subprocess
import sys
import tomllib

extras = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else []
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
deps = list(project["dependencies"])
optional = project.get("optional-dependencies", {})
for extra in extras:
    deps += [d for d in optional[extra] if not d.startswith("sqlembed[")]
subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", *sys.argv[2:], *deps], check=True)
