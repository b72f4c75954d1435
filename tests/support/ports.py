"""Loopback port helpers: tests start private servers on free ports instead of well-known ones.

The one implementation lives in hazardwatch/procs.py (the demo and the benches use it too).
"""

from __future__ import annotations

from hazardwatch.procs import free_port, port_open, wait_port, wait_port_closed

__all__ = ["free_port", "port_open", "wait_port", "wait_port_closed"]
