"""HTTP API: thin aiohttp handlers over central.services, OpenAPI in openapi.yaml."""
