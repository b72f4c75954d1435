"""Central's API meets hostile requests on a real process (issue 17, points 5 to 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.central_proc import ADMIN, CentralProcess, write_central_config

pytestmark = [pytest.mark.slow]

ID_PATHS = [
    ("GET", "/api/v1/incidents/{id}"),
    ("POST", "/api/v1/incidents/{id}/acknowledge"),
    ("POST", "/api/v1/incidents/{id}/resolve"),
    ("POST", "/api/v1/incidents/{id}/false-alarm"),
    ("POST", "/api/v1/incidents/{id}/reopen"),
    ("GET", "/api/v1/incidents/{id}/labels"),
    ("POST", "/api/v1/incidents/{id}/labels"),
    ("DELETE", "/api/v1/silences/{id}"),
    ("POST", "/api/v1/deliveries/{id}/retry"),
    ("GET", "/api/v1/rollouts/{id}"),
]


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory):
    tmp: Path = tmp_path_factory.mktemp("hostile-api")
    cfg = write_central_config(tmp / "central.yaml", broker_port=None, database_url=f"sqlite:///{tmp / 'c.db'}")
    with CentralProcess(cfg, tmp / "central.log") as proc:
        yield proc


@pytest.mark.parametrize("number", [2**63, 2**64, 10**40])
def test_path_ids_past_64_bits_answer_404_on_sqlite(central, number):
    for method, path in ID_PATHS:
        body = {"note": "x"} if path.startswith("/api/v1/incidents/{id}/") and "labels" not in path else None
        status, answer = central.request(method, path.format(id=number), body=body, token=ADMIN)
        assert status == 404, (method, path, number, status, answer)
    assert "Traceback" not in central.log()
