"""The edge's HTTP client to central: a download cut short fails with the path and the reason."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hazardwatch.edge.central_client import CentralClient, CentralError
from hazardwatch.edge.config import CentralLinkConfig

pytestmark = pytest.mark.quick


class _CutShort(BaseHTTPRequestHandler):
    """Announces 1 MB of model and closes the connection after 10 bytes (central restarted mid-download)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True


def test_a_download_cut_short_is_a_central_error_naming_the_path(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutShort)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = CentralClient(
            CentralLinkConfig.model_validate(
                {"url": f"http://127.0.0.1:{server.server_port}", "token": {"value": "t"}, "timeout_s": 5}
            )
        )
        with pytest.raises(
            CentralError,
            match=re.escape("/api/v1/models/smoke/1.0/file: download failed: cut short at 10 of 1048576 bytes"),
        ):
            client.download("/api/v1/models/smoke/1.0/file", tmp_path / "model.onnx", 10 << 20)
    finally:
        server.shutdown()
