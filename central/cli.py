"""`hazardwatch central calibrate` and the `--since` parser: argparse only here; the store loads when it
runs. `central export-dataset` is the models tooling's (`hazardwatch.models.dataset_cli`), added by the
top-level parser, because it needs OpenCV, which central's install does not have."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from pathlib import Path


def parse_since(text: str, now: float | None = None) -> float:
    """Unix seconds, an ISO date or time (UTC unless it names a zone), or a span back from now: 7d, 12h, 30m."""
    now = time.time() if now is None else now
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if m:
        return now - float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give Unix seconds, an ISO date/time or a span like 7d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _calibrate(args: argparse.Namespace) -> int:
    import sys

    import yaml

    from hazardwatch.central.config import CentralConfig
    from hazardwatch.central.service import database_url
    from hazardwatch.central.services.calibration import calibrate
    from hazardwatch.central.store import Database
    from hazardwatch.configfile import load_config

    cfg = load_config(args.config, CentralConfig)
    db = Database(database_url(cfg))
    try:
        db.migrate()
        with db.tx() as tx:
            result = calibrate(tx, args.since, args.min_alerts)
    finally:
        db.close()
    for name, counts in result["outcomes"].items():
        why = result["skipped"].get(name, "table written")
        print(f"{name}: {counts['real']} real, {counts['false_alarm']} false alarms: {why}", file=sys.stderr)
    print(yaml.safe_dump({"confidence": {"calibration": result["calibration"]}}, sort_keys=True), end="")
    return 0 if result["calibration"] else 1


def register(central: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """Sub-commands of `hazardwatch central` (plain `hazardwatch central --config FILE` still runs it);
    returns them so the top-level parser can add the models tooling's `export-dataset`."""
    sub = central.add_subparsers(dest="central_command", required=False)
    cal = sub.add_parser(
        "calibrate",
        help="print confidence.calibration tables measured on operators' verdicts (resolved = real, false alarm)",
    )
    cal.add_argument("--config", required=True, type=Path, help="central YAML config (for the database)")
    cal.add_argument("--since", type=parse_since, default=None, help="verdicts made since: Unix s, ISO time, or 90d")
    cal.add_argument("--min-alerts", type=int, default=30, help="fewest alerts with a verdict per model (default 30)")
    cal.set_defaults(func=_calibrate)
    return sub
