"""sqlembed: fast embeddings for SQL Server 2025."""

__version__ = "0.1.0"
