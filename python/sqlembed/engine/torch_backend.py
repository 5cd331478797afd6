"""PyTorch backend: fp16 with SDPA attention on CUDA (the reference for GPU fidelity), fp32 on CPU.

Pools on the device, so only [B, H] float32 crosses back to the host. torch and transformers are
imported here only; registry.py imports this module inside a function.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.gpu_common import split_on_oom
from sqlembed.engine.pooling import PoolingMode

log = logging.getLogger(__name__)


def cuda_device(explicit: str | None = None) -> str:
    """The torch device for a setting: "1" -> "cuda:1"; None or "cuda" -> "cuda:0"; "cpu" stays."""
    chosen = explicit if explicit not in (None, "", "cuda") else "0"
    assert chosen is not None
    return chosen if chosen.startswith(("cuda", "cpu")) else f"cuda:{chosen}"


class TorchBackend:
    name = "torch"

    def __init__(self, transformer_dir: Path, *, device: str = "cuda", pooling: PoolingMode = "mean",
                 normalize: bool = True) -> None:
        import torch
        from transformers import AutoModel

        self._torch = torch
        self.device = torch.device(cuda_device(device))
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        model = AutoModel.from_pretrained(str(transformer_dir), attn_implementation="sdpa", torch_dtype=self.dtype)  # nosec B615
        self.model = model.to(self.device).eval()
        self.pooling = pooling
        self.normalize = normalize
        self.name = f"torch-{self.device.type}"
        log.info("torch backend on %s (%s)", self.device, str(self.dtype).removeprefix("torch."))

    def _pool(self, hidden: Any, mask: Any) -> Any:
        torch = self._torch
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            out = hidden[:, 0]
        elif self.pooling == "max":
            out = hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        elif self.pooling == "lasttoken":
            out = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(dim=1) - 1]
        else:
            # Sum in fp32: fp16 sums over 256 tokens lose digits the fidelity tests notice.
            summed = (hidden.float() * m.float()).sum(dim=1)
            counts = m.float().sum(dim=1).clamp(min=1e-9)
            out = summed / (counts.sqrt() if self.pooling == "mean_sqrt_len" else counts)
        out = out.float()
        if self.normalize:
            out = torch.nn.functional.normalize(out, p=2, dim=1)
        return out

    def forward_pooled(self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
                       ) -> npt.NDArray[np.float32]:
        torch = self._torch

        def run(lo: int, hi: int) -> npt.NDArray[np.float32]:
            ids = torch.from_numpy(input_ids[lo:hi]).to(self.device, non_blocking=True)
            mask = torch.from_numpy(attention_mask[lo:hi]).to(self.device, non_blocking=True)
            with torch.inference_mode():
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                return np.asarray(self._pool(hidden, mask).cpu().numpy(), dtype=np.float32)

        def is_oom(exc: BaseException) -> bool:
            return isinstance(exc, torch.cuda.OutOfMemoryError)

        def retry(n: int) -> None:
            log.warning("GPU out of memory on a batch of %d: splitting it and retrying", n)
            torch.cuda.empty_cache()

        return split_on_oom(run, len(input_ids), is_oom, retry)

    def forward(self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
                ) -> npt.NDArray[np.float32]:
        torch = self._torch
        with torch.inference_mode():
            ids = torch.from_numpy(input_ids).to(self.device)
            mask = torch.from_numpy(attention_mask).to(self.device)
            return np.asarray(self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float().cpu().numpy())

    def close(self) -> None:
        del self.model
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()
