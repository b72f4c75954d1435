"""The delivery worker: takes due notifications from the queue and POSTs them to their receivers.

Why it works this way:
- The database is the only shared state, so any number of central instances can run a worker on the
  same queue: rows are leased on claim and every outcome is written with the claim's fencing token.
- It is a pipeline, not batches: a free slot is refilled as soon as an attempt ends, so one slow receiver
  never holds up the others, while the queue's chain rule keeps one incident's (or group's) notifications
  in order. Only the outcomes are batched: attempts ending together share one commit (`recorder.py`).
- Retries are exponential with jitter (so a fleet of instances does not hammer a recovering receiver in
  step), honour Retry-After, and stop at the receiver's deadline counted from the row's creation; a 4xx
  other than 408/429 is the receiver saying "never", so it becomes a dead letter at once.
- Database calls run in worker threads (asyncio.to_thread), so the event loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import math
import random
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence

import aiohttp
from prometheus_client import CollectorRegistry

from hazardwatch.central.config import ReceiverConfig
from hazardwatch.central.notify import queue
from hazardwatch.central.notify.cap import CONTENT_TYPE as CAP_CONTENT_TYPE
from hazardwatch.central.notify.cap import CapOptions, reference_for, render_cap
from hazardwatch.central.notify.cap_group import group_reference, render_group_cap
from hazardwatch.central.notify.policy import Decision, DeliveryMetrics, Outcome, decide, parse_retry_after
from hazardwatch.central.notify.queue import Delivery
from hazardwatch.central.notify.recorder import Recorder, write_outcomes
from hazardwatch.central.notify.webhook import CONTENT_TYPE as JSON_CONTENT_TYPE
from hazardwatch.central.notify.webhook import render_body, render_group_body, signed_headers
from hazardwatch.central.store.database import Database
from hazardwatch.configfile import resolve_secret

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "X-Hazardwatch-Attempt"
USER_AGENT = "hazardwatch-central/1"
_ERROR_BODY_BYTES = 300
GAUGE_PERIOD_S = 1.0  # the backlog gauges are refreshed with a claim at most this often


class DeliveryWorker:
    """Delivers queued notifications for the configured receivers until `stop()`.

    Several instances (one per central process) can share one database. `wake()` makes the loop claim at
    once (dispatch calls it after enqueueing); otherwise it polls every `poll_interval_s`, and sooner when
    one of its own retries falls due.
    """

    def __init__(
        self,
        db: Database,
        receivers: Sequence[ReceiverConfig],
        instance_id: str,
        metrics: DeliveryMetrics | CollectorRegistry | None = None,
        *,
        concurrency: int = 16,
        poll_interval_s: float = 1.0,
        lease_s: float | None = None,
        cap_options: CapOptions | None = None,
        on_result: Callable[[Delivery, Decision], None] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        stop_grace_s: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.db = db
        self.instance_id = instance_id
        self.receivers = {r.name: r for r in receivers}
        # Read once, here: a missing secret fails the start with a clear message, not the first delivery.
        self._secrets = {
            r.name: resolve_secret(r.secret.value, r.secret.env, r.secret.file, f"receivers.{r.name}.secret")
            if r.secret
            else None
            for r in receivers
        }
        if isinstance(metrics, CollectorRegistry):
            metrics = DeliveryMetrics(metrics)
        self.metrics = metrics if metrics is not None else DeliveryMetrics(CollectorRegistry())
        self.concurrency = concurrency
        self.poll_interval_s = poll_interval_s
        # A lease must outlive the longest attempt, or another instance would send the same row again.
        longest = max((r.timeout_s for r in receivers), default=10.0)
        self.lease_s = lease_s if lease_s is not None else longest + 30.0
        self.cap_options = cap_options or CapOptions()
        self.on_result = on_result
        self.clock = clock
        self.rng = rng or random.Random()
        self.stop_grace_s = stop_grace_s
        self.results: Tally[str] = Tally()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._finished: asyncio.Event | None = None
        self._dues: list[float] = []  # heap of this worker's own retry times, to wake up for them
        self._inflight: dict[asyncio.Task[None], Delivery] = {}
        self._recorder = Recorder(lambda outcomes: write_outcomes(self.db, outcomes, self.clock()))
        self._min_claim = max(1, concurrency // 4)
        self._gauges_at = -math.inf

    # -- control -----------------------------------------------------------------------------------
    def wake(self) -> None:
        """Claim now (safe from any thread): something was just enqueued."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming; let attempts in flight finish for `grace_s`, then cancel and release them.

        Returns once `run()` has wound down (when it runs on this loop), so a caller may cancel its task
        afterwards without turning a clean shutdown into a crash.
        """
        self._stopping = True
        if grace_s is not None:
            self.stop_grace_s = grace_s
        self.wake()
        finished = self._finished
        if finished is not None and self._loop is asyncio.get_running_loop():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self.stop_grace_s + 10.0)

    # -- loop --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """The worker loop. Cancelling it is like a crash: in-flight rows keep their lease until it expires."""
        self._loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        try:
            async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}) as session:
                try:
                    await self._loop_until_stopped(session)
                except asyncio.CancelledError:
                    for task in self._inflight:
                        task.cancel()
                    self._inflight.clear()
                    raise
                await self._drain()
        finally:
            self._finished.set()

    async def _loop_until_stopped(self, session: aiohttp.ClientSession) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            now = self.clock()
            while self._dues and self._dues[0] <= now:
                heapq.heappop(self._dues)
            free = self.concurrency - len(self._inflight)
            # Under load, refill slots a few at a time: each claim scans the pending rows once.
            if free >= self._min_claim or (free > 0 and not self._inflight):
                try:
                    claimed = await asyncio.to_thread(self._claim, free)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.error("delivery claim failed (%s): %s", self.instance_id, exc)
                    claimed = []
                for delivery in claimed:
                    task = asyncio.create_task(self._attempt(session, delivery))
                    self._inflight[task] = delivery
            # The exponent is capped: a database down for hours must not overflow the delay and crash us.
            await self._wait(min(self.poll_interval_s * 2 ** min(failures, 30), 30.0) if failures else None)

    async def _wait(self, timeout: float | None) -> None:
        if timeout is None:
            timeout = self.poll_interval_s
            if self._dues:
                timeout = max(0.0, min(timeout, self._dues[0] - self.clock()))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([waker, *self._inflight], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
        for task in [t for t in self._inflight if t.done()]:
            self._inflight.pop(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("delivery task failed: %r", task.exception())

    async def _drain(self) -> None:
        """Graceful stop: wait for attempts in flight, then cancel the rest and hand their rows back."""
        if not self._inflight:
            return
        _done, pending = await asyncio.wait(list(self._inflight), timeout=self.stop_grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            released = [self._inflight[t] for t in pending]
            await asyncio.to_thread(self._release, released)
        self._inflight.clear()

    # -- database (worker threads) -----------------------------------------------------------------
    def _claim(self, limit: int) -> list[Delivery]:
        now = self.clock()
        refresh = now - self._gauges_at >= GAUGE_PERIOD_S
        with self.db.tx() as tx:
            claimed = queue.claim_due(tx, now, limit, self.lease_s, receivers=list(self.receivers))
            counts = queue.counts_by_receiver(tx) if refresh else None
        if counts is None:
            return claimed
        self._gauges_at = now
        for name in self.receivers:
            self.metrics.pending.labels(name).set(counts.get((name, "pending"), 0))
            self.metrics.dead.labels(name).set(counts.get((name, "dead"), 0))
        return claimed

    def _references(self, delivery: Delivery) -> list[Delivery]:
        with self.db.tx() as tx:
            return queue.earlier_delivered(tx, delivery)

    def _release(self, deliveries: Sequence[Delivery]) -> None:
        with self.db.tx() as tx:
            for d in deliveries:
                queue.release(tx, d.id, d.attempts)

    # -- one attempt -------------------------------------------------------------------------------
    async def _render(self, delivery: Delivery, receiver: ReceiverConfig) -> tuple[bytes, str]:
        """The body: one incident's change, or a group's (`group_key`: all its incidents' changes)."""
        doc = delivery.view()
        grouped = delivery.group_key is not None
        if receiver.kind == "webhook":
            if grouped:
                key, at = delivery.idempotency_key, delivery.created_at
                body = render_group_body(key, at, doc["group"], doc["notifications"])
            else:
                body = render_body(delivery.msg_type, delivery.idempotency_key, delivery.created_at, doc)
            return body, JSON_CONTENT_TYPE
        earlier = await asyncio.to_thread(self._references, delivery) if delivery.msg_type != "Alert" else []
        opts = self.cap_options
        if grouped:
            refs = [group_reference(e.receiver, e.idempotency_key, e.created_at, opts) for e in earlier]
            render = functools.partial(render_group_cap, doc)
        else:
            refs = [reference_for(e.view(), e.receiver, e.idempotency_key, e.created_at, opts) for e in earlier]
            render = functools.partial(render_cap, doc, delivery.msg_type)
        body = render(
            created_at=delivery.created_at,
            receiver=delivery.receiver,
            idempotency_key=delivery.idempotency_key,
            references=refs,
            options=opts,
        )
        return body, CAP_CONTENT_TYPE

    async def _post(
        self, session: aiohttp.ClientSession, receiver: ReceiverConfig, body: bytes, headers: dict[str, str]
    ) -> Outcome:
        try:
            async with session.post(
                receiver.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=receiver.timeout_s),
                allow_redirects=False,
            ) as resp:
                excerpt = await resp.content.read(_ERROR_BODY_BYTES)
                text = "" if 200 <= resp.status < 300 else excerpt.decode("utf-8", "replace").strip()
                return Outcome(
                    status=resp.status,
                    error=text,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After"), self.clock()),
                )
        except TimeoutError:
            return Outcome(error=f"timeout after {receiver.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")

    async def _attempt(self, session: aiohttp.ClientSession, delivery: Delivery) -> None:
        receiver = self.receivers[delivery.receiver]
        started = time.monotonic()
        try:
            body, content_type = await self._render(delivery, receiver)
        except (ValueError, KeyError, TypeError) as exc:
            outcome = Outcome(status=None, error=f"cannot render {receiver.kind} message: {exc!r}")
            decision = Decision("dead", outcome.error)
        else:
            headers = signed_headers(
                body,
                idempotency_key=delivery.idempotency_key,
                secret=self._secrets[receiver.name],
                content_type=content_type,
                timestamp=int(self.clock()),
            )
            headers[ATTEMPT_HEADER] = str(delivery.attempts)
            outcome = await self._post(session, receiver, body, headers)
            decision = decide(outcome, delivery, receiver, self.clock(), self.rng)
        self.metrics.seconds.labels(receiver.name).observe(time.monotonic() - started)
        try:
            kept = await self._recorder.record(delivery, decision)
        except Exception as exc:
            # The row stays leased; after the lease another attempt repeats it (same idempotency key).
            log.error("cannot record delivery %s outcome %s: %s", delivery.id, decision.result, exc)
            return
        if not kept:
            log.warning("delivery %s: lease lost before its outcome (%s) was recorded", delivery.id, decision.result)
        self.metrics.deliveries.labels(receiver.name, decision.result).inc()
        self.results[decision.result] += 1
        if decision.result == "retry":
            log.info(
                "delivery %s to %s: %s; retry at %.3f",
                delivery.id,
                receiver.name,
                decision.error,
                decision.next_attempt_at,
            )
            if decision.next_attempt_at is not None:
                heapq.heappush(self._dues, decision.next_attempt_at)
        elif decision.result == "dead":
            log.warning("delivery %s to %s is a dead letter: %s", delivery.id, receiver.name, decision.error)
        if self.on_result is not None:
            try:
                self.on_result(delivery, decision)
            except Exception:  # an observer's failure must not fail the delivery, but is not hidden
                log.exception("on_result for delivery %s failed", delivery.id)
