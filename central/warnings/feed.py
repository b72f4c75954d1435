"""Polling CAP sources: a CAP document, or an ATOM/RSS index whose entries embed or link to CAP.

Each feed runs as its own asyncio task, so a feed that is down, slow or hostile delays only itself:
every request has a total timeout, bodies are read in chunks and abandoned past the size limit, XML
is parsed in a worker thread, and failures back off exponentially (with jitter) up to
`max_backoff_s`. Conditional requests (ETag / Last-Modified) keep an unchanged index cheap, and index
entries already handled (by id and updated time) are not fetched again. A linked document that fails
is retried with its own backoff and never holds back the index or the other entries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element

import aiohttp

from hazardwatch.central.config import WeatherFeedConfig
from hazardwatch.central.warnings.cap_model import CapError
from hazardwatch.central.warnings.safe_xml import ATOM, is_cap_alert, local_name, namespace, parse_xml

log = logging.getLogger(__name__)
MAX_ENTRIES_PER_POLL = 200
ENTRY_CONCURRENCY = 4

# Called with the CAP alert element (already parsed safely) and a source description; returns True when
# the entry is settled (accepted or permanently rejected) and False when it should be tried again.
Handler = Callable[[Element, str], Awaitable[bool]]
Rejecter = Callable[[str, str, str], Awaitable[None]]  # source, code, reason


class FetchError(Exception):
    """A fetch that failed; `code` is the metric label."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class EntryRetry:
    """An index entry that failed: how often in a row, and when (monotonic clock) it is tried again."""

    failures: int
    next_try: float


@dataclass(frozen=True)
class IndexEntry:
    key: str
    url: str | None
    embedded: Element | None


def index_entries(root: Element, base_url: str) -> tuple[list[IndexEntry], int]:
    """Entries of an ATOM feed or RSS channel, and how many were unusable (no CAP and no link)."""
    entries: list[IndexEntry] = []
    unusable = 0
    if local_name(root) == "feed" and namespace(root) == ATOM:
        for e in root.findall(f"{{{ATOM}}}entry"):
            ident = (e.findtext(f"{{{ATOM}}}id") or "").strip()
            updated = (e.findtext(f"{{{ATOM}}}updated") or "").strip()
            embedded = None
            content = e.find(f"{{{ATOM}}}content")
            if content is not None:
                embedded = next((c for c in content if is_cap_alert(c)), None)
            links = e.findall(f"{{{ATOM}}}link")
            cap_links = [lk for lk in links if "cap" in (lk.get("type") or "").lower()]
            plain = [lk for lk in links if (lk.get("rel") or "alternate") == "alternate"]
            href = next((lk.get("href") for lk in [*cap_links, *plain] if lk.get("href")), None)
            url = urljoin(base_url, href.strip()) if href else None
            if embedded is None and url is None:
                unusable += 1
                continue
            entries.append(IndexEntry(f"{ident or url}|{updated}", url, embedded))
    elif local_name(root) == "rss":
        for item in root.iter("item"):
            href = (item.findtext("link") or "").strip()
            guid = (item.findtext("guid") or "").strip()
            if not href:
                unusable += 1
                continue
            url = urljoin(base_url, href)
            entries.append(IndexEntry(f"{guid or url}|{(item.findtext('pubDate') or '').strip()}", url, None))
    else:
        raise CapError("unsupported", f"<{local_name(root)[:40]}> is neither a CAP alert nor an ATOM/RSS index")
    return entries, unusable


class FeedPoller:
    """Polls one configured feed until cancelled."""

    def __init__(
        self,
        cfg: WeatherFeedConfig,
        handle: Handler,
        reject: Rejecter,
        count: Callable[[str, str], None],
        max_bytes: int,
    ) -> None:
        self.cfg = cfg
        self._handle = handle
        self._reject = reject
        self._count = count  # (feed name, result) -> metric
        self.max_bytes = max_bytes
        self.failures = 0
        self._etag: str | None = None
        self._modified: str | None = None
        self._seen: dict[str, None] = {}  # index entries handled for good
        self._retry: dict[str, EntryRetry] = {}  # entries that failed, by key
        self._entries: list[IndexEntry] = []
        allowed = {urlsplit(cfg.url).hostname or ""} | {h.lower() for h in cfg.link_hosts}
        self._hosts = {h.lower() for h in allowed if h}

    def next_delay(self) -> float:
        if not self.failures:
            return self.cfg.poll_s
        delay = min(self.cfg.poll_s * 2 ** min(self.failures, 20), self.cfg.max_backoff_s)
        return max(self.cfg.poll_s, delay * random.uniform(0.8, 1.2))

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            await self.poll_once(session)
            await asyncio.sleep(self.next_delay())

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        try:
            await self._poll(session)
        except FetchError as exc:
            self.failures += 1
            self._count(self.cfg.name, exc.code)
            log.warning("weather feed %s: %s; next try in about %.0f s", self.cfg.name, exc, self.next_delay())
        except CapError as exc:
            self.failures += 1
            self._count(self.cfg.name, "rejected")
            await self._reject(self.cfg.url, exc.code, exc.reason)
            log.warning("weather feed %s rejected: %s", self.cfg.name, exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            self._forget_validators()  # what was fetched was not dealt with: fetch it whole next time
            self._count(self.cfg.name, "error")
            log.exception("weather feed %s failed", self.cfg.name)

    def _forget_validators(self) -> None:
        """The next poll is unconditional: a 304 must not hide a document that was never stored."""
        self._etag = self._modified = None

    async def fetch(self, session: aiohttp.ClientSession, url: str, conditional: bool) -> bytes | None:
        """GET with a total timeout and a size cap; None when the server says not modified."""
        headers = {"Accept": "application/cap+xml, application/atom+xml, application/rss+xml, application/xml;q=0.9"}
        if conditional and self._etag:
            headers["If-None-Match"] = self._etag
        if conditional and self._modified:
            headers["If-Modified-Since"] = self._modified
        try:
            async with (
                asyncio.timeout(self.cfg.timeout_s),
                session.get(url, headers=headers, allow_redirects=True, max_redirects=3) as resp,
            ):
                if resp.status == 304:
                    return None
                if resp.status != 200:
                    raise FetchError("http_error", f"HTTP {resp.status} from {url}")
                if (resp.content_length or 0) > self.max_bytes:
                    raise FetchError("oversized", f"{url} announces {resp.content_length} bytes")
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FetchError("oversized", f"{url} sent more than {self.max_bytes} bytes")
                    chunks.append(chunk)
                if conditional:
                    self._etag = resp.headers.get("ETag")
                    self._modified = resp.headers.get("Last-Modified")
                return b"".join(chunks)
        except TimeoutError:
            raise FetchError("timeout", f"{url} did not answer within {self.cfg.timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise FetchError("unreachable", f"{url}: {type(exc).__name__}: {exc}") from None

    async def _poll(self, session: aiohttp.ClientSession) -> None:
        data = await self.fetch(session, self.cfg.url, conditional=True)
        if data is None:
            self.failures = 0
            self._count(self.cfg.name, "not_modified")
        else:
            root = await asyncio.to_thread(parse_xml, data, self.max_bytes)
            if is_cap_alert(root):
                if not await self._handle(root, self.cfg.url):
                    self._forget_validators()
                    raise FetchError("error", f"{self.cfg.url}: the document could not be stored; fetched again")
                self.failures = 0
                self._count(self.cfg.name, "ok")
                return
            entries, unusable = index_entries(root, self.cfg.url)
            if unusable:
                self._count(self.cfg.name, "entry_unusable")
                log.warning("weather feed %s: %d entries with neither CAP nor a link", self.cfg.name, unusable)
            self._entries = entries[:MAX_ENTRIES_PER_POLL]
            keys = {e.key for e in self._entries}
            # Forget entries that left the index, so memory stays bounded by the index size.
            self._seen = {k: None for k in self._seen if k in keys}
            self._retry = {k: v for k, v in self._retry.items() if k in keys}
            self.failures = 0
            self._count(self.cfg.name, "ok")
        # New entries, and failed ones whose own backoff is over (also when the index is unchanged).
        now = time.monotonic()
        todo = [
            e
            for e in self._entries
            if e.key not in self._seen and (e.key not in self._retry or self._retry[e.key].next_try <= now)
        ]
        gate = asyncio.Semaphore(ENTRY_CONCURRENCY)

        async def one(entry: IndexEntry) -> None:
            async with gate:
                settled = await self._entry(session, entry)
            if settled:
                self._seen[entry.key] = None
                self._retry.pop(entry.key, None)
            else:
                n = self._retry[entry.key].failures + 1 if entry.key in self._retry else 1
                wait = min(self.cfg.poll_s * 2 ** min(n, 20), self.cfg.max_backoff_s) * random.uniform(0.8, 1.2)
                self._retry[entry.key] = EntryRetry(n, time.monotonic() + wait)

        await asyncio.gather(*(one(e) for e in todo))

    async def _entry(self, session: aiohttp.ClientSession, entry: IndexEntry) -> bool:
        if entry.embedded is not None:
            return await self._handle(entry.embedded, f"{self.cfg.url}#{entry.key.split('|')[0][:200]}")
        assert entry.url is not None
        parts = urlsplit(entry.url)
        if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in self._hosts:
            self._count(self.cfg.name, "link_refused")
            await self._reject(entry.url, "link_refused", "link to a host that is not the feed's nor in link_hosts")
            return True
        try:
            data = await self.fetch(session, entry.url, conditional=False)
            root = await asyncio.to_thread(parse_xml, data or b"", self.max_bytes)
        except FetchError as exc:
            self._count(self.cfg.name, exc.code)
            log.warning("weather feed %s: entry %s: %s", self.cfg.name, entry.url[:200], exc)
            return False
        except CapError as exc:
            self._count(self.cfg.name, "rejected")
            await self._reject(entry.url, exc.code, exc.reason)
            return True
        return await self._handle(root, entry.url)
