"""The edge worker: ingest, patrol, detect, confirm, publish. Installed as `hazardwatch.edge`."""
