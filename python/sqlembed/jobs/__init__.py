"""Bulk jobs: the job record, a durable SQLite store, and the runner that drives Spark."""
