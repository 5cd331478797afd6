"""Composition roots: one per process kind, the only code that turns ``Settings`` into objects.

- ``service``: ``sqlembed serve`` (one process): engine, batcher, placement, job runner, HTTP app.
- ``host`` and ``front``: ``sqlembed serve --workers N``: the engine host and its front processes.
- ``bulk``: ``sqlembed embed-table`` and spark-submit: a bulk job's driver.
- ``engine``: the one place a service-side process opens its engine (and builds the default
  model on a first start).

Nothing below this package imports it (tests/unit/test_layers.py); the CLI parses arguments and
calls one of these.
"""
