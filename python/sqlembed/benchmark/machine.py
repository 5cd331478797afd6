"""What a benchmark figure was measured on: CPU model, cores, and the instruction-set flags that
change ONNX Runtime's and OpenVINO's kernels (printed beside every figure)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def describe() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags] or ["(flags unknown)"]
    return f"{model}, {os.cpu_count()} logical CPUs, flags: {' '.join(have)}"
