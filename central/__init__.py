"""Central aggregator: MQTT ingest, incidents, notifications, weather warnings and the REST API.
Installed as `hazardwatch.central`."""
