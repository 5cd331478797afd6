"""Spark side of bulk jobs: session factory, per-partition embedding, the job driver."""
