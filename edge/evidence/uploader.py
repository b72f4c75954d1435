"""Resumable push of saved evidence to central: HEAD for central's offset, then PUT chunks.

An edge behind NAT cannot be fetched from, so it pushes; a cut connection resumes where it stopped,
and failures back off to 60 s on the uploader's own thread. A file central refuses for itself (a 4xx)
waits for the next round without holding back the files after it; a file gone from disk is dropped
from the index, since nothing can send it any more.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from hazardwatch.edge.central_client import CentralClient

if TYPE_CHECKING:
    from hazardwatch.edge.evidence.store import EvidenceStore

log = logging.getLogger(__name__)

NOT_ABOUT_THE_FILE = (401, 403, 408, 409, 429)  # a token, a timeout or a busy central: back off


class FileRefused(OSError):
    """Central refused this one file (a 4xx not in NOT_ABOUT_THE_FILE): the next files go on."""


class EvidenceUploader:
    """Sends unsent evidence to central in chunks; asks central how much it has before resuming."""

    def __init__(self, client: CentralClient, edge_id: str, chunk_bytes: int) -> None:
        self.client = client
        self.edge_id = edge_id
        self.chunk = chunk_bytes
        self.store: EvidenceStore | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evidence-upload", daemon=True)
        self.uploaded = 0

    def attach(self, store: EvidenceStore) -> None:
        self.store = store
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            assert self.store is not None
            ok = True
            for item in self.store.items(unsent_only=True):
                if self._stop.is_set():
                    return
                try:
                    self.upload(item)
                    delay = 1.0
                except FileNotFoundError as exc:
                    if not self.store.dir.is_dir():  # the whole folder is away (an unmounted card): wait
                        ok = False
                        log.warning(
                            "evidence folder %s is missing (%s); retrying in %.0f s", self.store.dir, exc, delay
                        )
                        break
                    log.error(
                        "evidence %s: its file %s is missing; dropped from the upload queue", item["id"], item["path"]
                    )
                    self.store.forget(item["id"])
                except FileRefused as exc:
                    self.store.note_attempt(item["id"])
                    log.warning("evidence %s refused by central (%s); tried again next round", item["id"], exc)
                except Exception as exc:
                    ok = False
                    self.store.note_attempt(item["id"])
                    log.warning("evidence %s upload failed (%s); retrying in %.0f s", item["id"], exc, delay)
                    break
            self._wake.wait(delay if not ok else 30.0)
            self._wake.clear()
            if not ok:
                delay = min(delay * 2, 60.0)

    def upload(self, item: dict[str, Any]) -> None:
        """HEAD for central's offset, then PUT the rest in chunks with Content-Range."""
        assert self.store is not None
        path = f"/api/v1/edges/{self.edge_id}/evidence/{item['id']}"
        status, headers, _ = self.client.request("HEAD", path)
        offset = 0
        if status == 200:
            offset = int({k.lower(): v for k, v in headers.items()}.get("upload-offset", "0"))
        elif status != 404:
            raise self._failure("HEAD", status, b"")
        keys = ("alert_id", "camera_id", "hazard", "state", "kind", "content_type", "sha256", "captured_at")
        meta = {k: item[k] for k in keys}
        meta["meta"] = json.loads(item["meta"])
        data = (self.store.dir / item["path"]).read_bytes()
        total = len(data)
        while offset < total or total == 0:
            end = min(total, offset + self.chunk)
            body = data[offset:end]
            status, _, raw = self.client.request(
                "PUT",
                path,
                body,
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"bytes {offset}-{end - 1}/{total}",
                    "X-Evidence-Meta": json.dumps(meta, separators=(",", ":")),
                },
            )
            if status == 409:  # central has a different offset: ask again
                _, headers, _ = self.client.request("HEAD", path)
                central_at = int({k.lower(): v for k, v in headers.items()}.get("upload-offset", "0"))
                if central_at == offset:  # asking again changes nothing (another file's size): back off
                    raise FileRefused(f"PUT answered 409 at central's own offset {offset}: {raw[:200]!r}")
                offset = central_at
                continue
            if status not in (200, 201):
                raise self._failure("PUT", status, raw)
            doc = json.loads(raw)
            offset = int(doc["received"])
            if doc.get("complete"):
                break
        self.store.mark_uploaded(item["id"])
        self.uploaded += 1

    @staticmethod
    def _failure(method: str, status: int, raw: bytes) -> OSError:
        text = f"{method} answered {status}: {raw[:200]!r}"
        return FileRefused(text) if 400 <= status < 500 and status not in NOT_ABOUT_THE_FILE else OSError(text)
