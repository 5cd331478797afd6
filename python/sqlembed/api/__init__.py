"""HTTP service: aiohttp app factory, protocol adapters, errors, health, metrics."""
