"""Embedding engine: tokenizer, batch planner, pooling, backends, model store, batcher.

Never imports aiohttp, pyspark or a database driver (tests/unit/test_import_rules.py).
"""
