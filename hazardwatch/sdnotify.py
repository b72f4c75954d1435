"""systemd's notify protocol, without a dependency: one datagram to the NOTIFY_SOCKET unix socket.

Why: the edge unit (`deploy/systemd/hazardwatch-edge.service`) is `Type=notify` with `WatchdogSec`,
so systemd knows when the edge really serves (models loaded, HTTP bound) and restarts it when its
event loop stops answering, which a plain `Restart=on-failure` cannot see. Outside systemd (no
NOTIFY_SOCKET) every call is a cheap no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable


def notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to systemd; False when not run under a notify-aware manager."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between keep-alive pings (half of WatchdogSec), or None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6 / 2


async def watchdog(stop: asyncio.Event, healthy: Callable[[], bool] = lambda: True) -> None:
    """Ping systemd's watchdog while the event loop runs and `healthy()` holds; a blocked loop or an
    unhealthy process stops the pings, and systemd restarts the service after WatchdogSec."""
    interval = watchdog_interval()
    if interval is None:
        return
    while not stop.is_set():
        if healthy():
            notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
