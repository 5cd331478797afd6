"""ONNX Runtime CPU backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.backend import model_feeds


class OnnxCpuBackend:
    name = "onnx-cpu"

    def __init__(self, model_path: Path, *, threads: int, spin: bool = False, precision: str = "fp32",
                 cpu: str = "", reason: str = "") -> None:
        import onnxruntime as ort

        self._version = ort.__version__
        self._threads = threads
        self._spin = spin
        self._precision = precision
        self._cpu = cpu
        self.reason = reason
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # In a server the event loop shares the cores with inference: spinning workers would
        # steal the CPU it needs to parse the next requests.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self._session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._output = self._session.get_outputs()[0].name

    def forward(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        feeds = model_feeds(self._inputs, input_ids, attention_mask)
        out = self._session.run([self._output], feeds)[0]
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "runtime": f"onnxruntime {self._version}",
            "provider": "CPUExecutionProvider",
            "precision": self._precision,
            "threads": self._threads,
            "spin": self._spin,
            "cpu": self._cpu,
            "why": self.reason,
        }

    def close(self) -> None:
        del self._session
