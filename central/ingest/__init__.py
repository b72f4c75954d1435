"""MQTT ingest: shared subscription, validation, batched durable writes, then acknowledgement."""
