"""Domain operations on the store: ingest, incidents, dispatch, silences. No HTTP, no MQTT."""
