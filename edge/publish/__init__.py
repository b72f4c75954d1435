"""Getting messages off the box: the persistent outbox and the MQTT link that drains it."""
