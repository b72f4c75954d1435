"""The edge's HTTP client to central: model downloads for rollouts, evidence uploads.

Standard library only, and blocking: it runs on the rollout and evidence-upload threads, never on
the event loop. One bearer token (the edge's own) authenticates every call.
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from hazardwatch.edge.config import CentralLinkConfig


class CentralError(Exception):
    """A download from central failed or was refused; the text names the path and why."""


class CentralClient:
    """Authenticated HTTP calls to central (stdlib only: it runs on worker threads, off the loop)."""

    def __init__(self, cfg: CentralLinkConfig) -> None:
        self.base = cfg.url.rstrip("/")
        self.timeout = cfg.timeout_s
        self._token = cfg.token.reveal("central edge token")
        self._ssl = ssl.create_default_context(cafile=str(cfg.ca_file)) if cfg.ca_file else None

    def request(
        self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one call; an HTTP error status is returned, a network failure raises
        URLError (an OSError)."""
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers or {}), err.read()

    def download(self, path: str, dest: Path, max_bytes: int) -> str:
        """Stream a file to `dest`; return its sha256. Refuses bodies over `max_bytes` and bodies shorter
        than their Content-Length (a connection closed early reads as a short body, not as an error)."""
        req = urllib.request.Request(self.base + path)
        req.add_header("Authorization", f"Bearer {self._token}")
        h = hashlib.sha256()
        total = 0
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp, dest.open("wb") as f:
                announced = resp.headers.get("Content-Length")
                while chunk := resp.read(1 << 20):
                    total += len(chunk)
                    if total > max_bytes:
                        raise CentralError(f"{path}: larger than the {max_bytes}-byte limit")
                    h.update(chunk)
                    f.write(chunk)
        except urllib.error.HTTPError as err:
            raise CentralError(f"{path}: central answered {err.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise CentralError(f"{path}: download failed: {exc}") from None
        if announced is not None and announced.isdigit() and total != int(announced):
            raise CentralError(f"{path}: download failed: cut short at {total} of {announced} bytes")
        return h.hexdigest()
