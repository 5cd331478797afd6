"""The HTTP contract: one module per protocol holds its request models (validated with pydantic)
and its response shapes (TypedDicts the handlers fill, so mypy checks them). ``api/openapi.py``
generates the OpenAPI document from these and the route table, so the two cannot drift."""
