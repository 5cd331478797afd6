"""Online batches on Spark executors (``placement=spark|auto``), in parts:

- ``codec``: the raw int32 / float32 frames a batch and its vectors travel as;
- ``executor``: the long-running task body on an executor (engine loaded once, serves batches);
- ``pool``: the connected executor tasks as slots the batcher leases, with the local fallback;
- ``listener``: where executor tasks connect (multiprocessing.connection: framing plus an HMAC
  challenge, so the key never crosses the network);
- ``launcher``: keeps one online task per executor (a "wave" job), counting executors through
  Spark's documented REST API;
- ``placement``: ``SparkPlacement``, the engine.placement.Placement the batcher sees.
"""
