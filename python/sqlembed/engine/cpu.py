"""What the CPU can do, read from ``/proc/cpuinfo``, and the CPU runtime each precision gets.

Pure functions over a small frozen capability object, so every decision is testable with a fake
cpuinfo text. No runtime library is imported here.

- bf16 needs native bf16 dot products (``avx512_bf16`` or AMX ``amx_bf16``); without them a bf16
  hint is emulated or ignored, so ``bf16`` is refused rather than served slowly or as fp32.
- VNNI (``avx512_vnni``, ``avx_vnni``, AMX ``amx_int8``) multiplies u8 x s8 without saturating, so
  static int8 keeps full 8-bit weights; plain AVX2 needs 7-bit weights (NNCF's overflow fix).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

from sqlembed.errors import BackendUnavailable

CPUINFO = Path("/proc/cpuinfo")
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@dataclass(frozen=True)
class CpuCaps:
    flags: frozenset[str]
    """The flags among ``RELEVANT_FLAGS`` that the CPU has."""
    model: str = ""
    known: bool = True
    """False where no cpuinfo could be read (then nothing is assumed)."""

    @property
    def bf16(self) -> bool:
        return bool(self.flags & BF16_FLAGS)

    @property
    def vnni(self) -> bool:
        return bool(self.flags & VNNI_FLAGS)

    @property
    def amx(self) -> bool:
        return bool(self.flags & {"amx_bf16", "amx_int8"})

    def flag_list(self) -> list[str]:
        return [f for f in RELEVANT_FLAGS if f in self.flags]

    def summary(self) -> str:
        """One line for logs: the model and the flags that decide the kernels."""
        if not self.known:
            return "CPU flags unknown (no /proc/cpuinfo)"
        flags = " ".join(self.flag_list()) or "none of " + " ".join(RELEVANT_FLAGS)
        return f"{self.model or 'CPU'} [{flags}]"

    def bf16_flags(self) -> str:
        return "+".join(sorted(self.flags & BF16_FLAGS)) or "none"

    def vnni_flags(self) -> str:
        return "+".join(sorted(self.flags & VNNI_FLAGS)) or "none"


def parse_cpuinfo(text: str) -> CpuCaps:
    """The capabilities in a ``/proc/cpuinfo`` text (the first processor's entry decides)."""
    flags: set[str] | None = None
    model = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key in ("flags", "Features") and flags is None:
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    if flags is None:
        return CpuCaps(frozenset(), model, known=False)
    return CpuCaps(frozenset(flags & set(RELEVANT_FLAGS)), model)


@functools.cache
def read_cpu_caps(path: Path = CPUINFO) -> CpuCaps:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return CpuCaps(frozenset(), platform.processor(), known=False)
    return parse_cpuinfo(text)


def bf16_refusal(caps: CpuCaps) -> str:
    return (f"precision bf16 needs a CPU with native bf16 (avx512_bf16 or amx_bf16); this one is "
            f"{caps.summary()}: use --precision fp32 or int8 (SQLEMBED_PRECISION)")


def inference_precision(precision: str, caps: CpuCaps) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for a model precision.

    Always explicit: OpenVINO's default on a bf16 CPU is already bf16, so fp32 must say f32. The
    int8 IR runs its non-quantized parts in bf16 where the CPU has it (same fidelity, measured),
    else in f32. bf16 on a CPU without it is refused.
    """
    if precision == "fp32":
        return "f32"
    if precision == "bf16":
        if not caps.bf16:
            raise BackendUnavailable(bf16_refusal(caps))
        return "bf16"
    if precision == "int8":
        return "bf16" if caps.bf16 else "f32"
    raise BackendUnavailable(f"no CPU inference precision for model precision {precision!r}")


def choose_cpu_backend(precision: str, runtime: str, caps: CpuCaps, *, openvino_importable: bool) -> tuple[str, str]:
    """(backend, why) for ``auto`` on the CPU; never changes the precision.

    ``runtime`` is the one the model directory was built for (``Manifest.runtime``).
    """
    if precision == "bf16":
        if not caps.bf16:
            raise BackendUnavailable(bf16_refusal(caps))
        if not openvino_importable:
            raise BackendUnavailable("precision bf16 is served by OpenVINO, which is not installed: "
                                     "pip install 'sqlembed[server]' (or pip install openvino)")
        return "openvino", (f"bf16: OpenVINO with bf16 inference on {caps.bf16_flags()} "
                            f"(ONNX Runtime has no bf16 CPU kernels)")
    if runtime == "openvino":
        if not openvino_importable:
            raise BackendUnavailable(f"this {precision} model is an OpenVINO IR and OpenVINO is not installed: "
                                     "pip install 'sqlembed[server]' (or pip install openvino)")
        if precision == "int8":
            weights = (f"full-range s8 weights on {caps.vnni_flags()}" if caps.vnni
                       else "7-bit weights (no VNNI)")
            rest = "bf16" if caps.bf16 else "f32"
            return "openvino", (f"static int8 (NNCF-calibrated OpenVINO IR): u8 x s8 kernels, {weights}; "
                                f"the rest in {rest}")
        return "openvino", f"the {precision} model was built for OpenVINO"
    if precision == "int8":
        return "onnx-cpu", ("int8 model built with ONNX Runtime dynamic quantization (before static int8); "
                            "rebuild it for calibrated static int8: sqlembed model build --precision int8 --force")
    return "onnx-cpu", (f"{precision}: ONNX Runtime, the reference runtime (OpenVINO f32 measured within "
                        f"noise, 5-11% faster, docs/benchmarks.md); CPU {caps.summary()}")
