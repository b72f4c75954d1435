"""paho client construction for both services: protocol, session, credentials and TLS from one config.

Each side then adds its own callbacks, will, flow control and subscriptions.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

from hazardwatch.kernel.settings import BrokerSettings


def broker_password(broker: BrokerSettings) -> str | None:
    """The broker password, read once (ValueError names an unset variable or unreadable file)."""
    return broker.password.reveal("broker password") if broker.password else None


def make_client(
    broker: BrokerSettings,
    client_id: str,
    password: str | None,
    *,
    clean_session: bool,
    insecure_skip_hostname_check: bool = False,
) -> mqtt.Client:
    """A paho v2-callback client; `clean_session` applies to MQTT 3.1.1 only (v5 sets it per connect)."""
    if broker.protocol == "5":
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean_session
        )
    if broker.username:
        client.username_pw_set(broker.username, password)
    if broker.tls:
        client.tls_set(
            ca_certs=str(broker.tls.ca_file),
            certfile=str(broker.tls.cert_file) if broker.tls.cert_file else None,
            keyfile=str(broker.tls.key_file) if broker.tls.key_file else None,
        )
        if insecure_skip_hostname_check:
            client.tls_insecure_set(True)
    return client
