"""Database side: the packaged T-SQL (sql/), its renderer and deployer, connections."""
