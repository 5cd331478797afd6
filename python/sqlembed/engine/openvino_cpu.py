"""OpenVINO CPU backend: bf16 on the fp32 ONNX graph, and the NNCF static int8 IR.

One compiled model, one ``InferRequest`` per calling thread (requests are not thread-safe and
reuse their output buffers, so outputs are copied). Shapes stay dynamic, but the width is padded to
a multiple of 16: the plugin compiles kernels for each new shape it meets (~40 ms per int8 shape,
~7 ms per bf16 one, measured), and a service batching single texts meets hundreds; a multiple of
16 also runs faster warm (docs/benchmarks.md, "Shapes").
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.backend import model_feeds
from sqlembed.engine.cpu import CpuCaps, inference_precision


class OpenVinoBackend:
    name = "openvino"
    length_multiple = 16

    def __init__(self, model_path: Path, *, threads: int, precision: str, caps: CpuCaps, reason: str = "") -> None:
        import openvino as ov

        self._hint = inference_precision(precision, caps)
        self._precision = precision
        self._caps = caps
        self._threads = threads
        self._model_file = model_path.name
        self.reason = reason
        core = ov.Core()
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": self._hint,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
            # Pinned threads of two engines on one machine (Spark tasks, several service processes)
            # land on the same cores: two 1-thread processes ran at half speed, measured.
            "ENABLE_CPU_PINNING": False,
        }
        if precision == "int8":
            # The CPU plugin's generated ("snippets") attention kernels gave wrong int8 vectors at
            # exactly 32 tokens wide on an AMX CPU (cosine 0.63 to fp32 where every other width
            # gave 0.997; openvino 2026.4.1); without them every width is right, at 3-6% speed.
            # bf16 was right at every width with them, so it keeps them (docs/benchmarks.md).
            config["SNIPPETS_MODE"] = "DISABLE"
        self._snippets = str(config.get("SNIPPETS_MODE", "ENABLE")).lower()
        self._compiled = core.compile_model(core.read_model(str(model_path)), "CPU", config)
        self._version = ov.get_version().split("-", 1)[0]
        self._inputs = {i.get_any_name() for i in self._compiled.inputs}
        self._output = self._compiled.output(0)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._requests: list[Any] = []

    def _request(self) -> Any:
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._compiled.create_infer_request()
            self._local.request = req
            with self._lock:
                self._requests.append(req)
        return req

    def forward(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        feeds = model_feeds(self._inputs, input_ids, attention_mask)
        out = self._request().infer(feeds)[self._output]
        # A copy: the request overwrites this buffer on its next call.
        return np.array(out, dtype=np.float32, copy=True)

    def kernels(self) -> dict[str, int]:
        """Fully connected layers of the compiled graph by the precision they run in (u8/i8 = int8)."""
        counts: collections.Counter[str] = collections.Counter()
        for op in self._compiled.get_runtime_model().get_ops():
            rt = op.get_rt_info()
            if "layerType" in rt and rt["layerType"].astype(str) == "FullyConnected":
                counts[rt["runtimePrecision"].astype(str) if "runtimePrecision" in rt else "?"] += 1
        return dict(sorted(counts.items()))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "runtime": f"openvino {self._version}",
            "precision": self._precision,
            "inference_precision": self._hint,
            "model_file": self._model_file,
            "threads": self._threads,
            "snippets": self._snippets,
            "fully_connected_kernels": self.kernels(),
            "cpu": self._caps.summary(),
            "why": self.reason,
        }

    def close(self) -> None:
        with self._lock:
            self._requests.clear()
        self._local = threading.local()
        del self._compiled
