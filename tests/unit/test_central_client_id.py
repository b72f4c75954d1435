"""Central's default MQTT client id is stable per instance and unguessable without its password (issue 17.4)."""

from __future__ import annotations

import pytest

from hazardwatch.central.ingest.mqtt_ingest import default_client_id

pytestmark = pytest.mark.quick


def test_default_client_id_is_stable_and_needs_the_password_to_guess():
    cid = default_client_id("central-1", "s3cret-password")
    assert cid == default_client_id("central-1", "s3cret-password")  # the persistent session survives restarts
    assert cid.startswith("hazardwatch-central-central-1-") and cid != "hazardwatch-central-central-1"
    assert len(cid.rsplit("-", 1)[1]) == 20
    assert default_client_id("central-1", "another-password") != cid
    assert default_client_id("central-2", "s3cret-password") != cid
    assert "s3cret" not in cid
    assert default_client_id("central-1", None) == "hazardwatch-central-central-1"  # anonymous broker: nothing to hide
