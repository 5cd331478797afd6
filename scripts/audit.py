#!/usr/bin/env python3
"""pip-audit over the project environment, honest about what it could check.

Fails on a known vulnerability. Where the advisory source cannot be reached, or knows none of the
installed versions (a private mirror), it says so and exits 0: a skipped audit is reported as
skipped, never as clean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    venv_python, pip_audit = sys.argv[1], sys.argv[2]
    freeze = subprocess.run([venv_python, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout
    reqs = [ln for ln in freeze.splitlines() if ln and not ln.startswith(("-e", "#")) and " @ " not in ln]
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("\n".join(reqs) + "\n")
        out = subprocess.run([pip_audit, "-r", str(req), "--no-deps", "--disable-pip", "--progress-spinner", "off",
                              "-f", "json"], capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        reason = (out.stderr.strip().splitlines() or ["no output"])[-1][:300]
        print(f"pip-audit: SKIPPED, the advisory source is not reachable from here ({reason})")
        return 0
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    audited = [d for d in deps if "skip_reason" not in d]
    for d in vulnerable:
        for v in d["vulns"]:
            print(f"pip-audit: {d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v.get('fix_versions', []))})")
    if vulnerable:
        return 1
    if not audited:
        print(f"pip-audit: SKIPPED, the advisory source knows none of the {len(deps)} installed versions "
              "(packages come from a mirror)")
        return 0
    print(f"pip-audit: {len(audited)} packages audited, no known vulnerabilities "
          f"({len(deps) - len(audited)} not known to the advisory source)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
