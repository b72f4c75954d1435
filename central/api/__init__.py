"""HTTP API: thin aiohttp handlers over central.services, one module per resource, joined in
`routes.py`; OpenAPI in openapi.yaml."""
