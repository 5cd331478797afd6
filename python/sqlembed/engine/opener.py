"""The one way to open the engine: ``EngineSettings`` in, a warmed-up-ready ``Embedder`` out.

A model that is missing or cannot be loaded is one clear error naming the path and the command
that rebuilds it, never a traceback (the service checks this before it opens its port).
"""

from __future__ import annotations

from sqlembed.engine.backend import Backend
from sqlembed.engine.config import DEFAULT_MODEL, EngineSettings
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.store import Manifest, ModelStore
from sqlembed.engine.tokenizer import Tokenizer
from sqlembed.errors import ModelNotFound, SqlembedError, summary


def rebuild_command(es: EngineSettings) -> str:
    cmd = f"sqlembed model build --precision {es.precision}"
    if es.model != DEFAULT_MODEL:
        cmd += f" --source <directory or Hub id of {es.model}> --name {es.model}"
    return cmd


def load_manifest(es: EngineSettings) -> Manifest:
    try:
        return ModelStore(es.model_dir).get(es.model_id)
    except ModelNotFound:
        raise SqlembedError(f"model '{es.model_id}' is not built in {es.model_dir}; build it: "
                            f"{rebuild_command(es)}") from None
    except (ValueError, TypeError, KeyError) as exc:  # a truncated or hand-edited manifest.json
        raise _unloadable(es, exc) from None


def _unloadable(es: EngineSettings, exc: Exception) -> SqlembedError:
    return SqlembedError(f"model '{es.model_id}' in {es.model_path} cannot be loaded ({summary(exc)}); "
                         f"rebuild it: {rebuild_command(es)} --force")


def open_backend(es: EngineSettings, manifest: Manifest) -> Backend:
    from sqlembed.engine.registry import create_backend

    return create_backend(es.backend, es.model_path, threads=es.resolved_threads(), spin=es.spin,
                          manifest=manifest, device=es.device, build_on_start=es.build_on_start)


def open_embedder(es: EngineSettings, backend: Backend | None = None, manifest: Manifest | None = None) -> Embedder:
    """The engine for ``es``; ``backend`` replaces the one the settings name (tests, benchmarks);
    ``manifest``: the one a bulk plan read on the driver (executors do not read it again)."""
    manifest = manifest if manifest is not None else load_manifest(es)
    path = es.model_path
    try:
        if not (path / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{path / 'tokenizer.json'} is missing")
        tokenizer = Tokenizer(path / "tokenizer.json", manifest.max_seq_length)
        chosen = backend if backend is not None else open_backend(es, manifest)
    except SqlembedError:
        raise
    except Exception as exc:
        raise _unloadable(es, exc) from None
    return Embedder(chosen, tokenizer, manifest, max_batch_items=es.max_batch_items,
                    max_batch_tokens=es.max_batch_tokens)
