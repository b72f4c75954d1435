"""The `export-dataset` sub-command, offered as `hazardwatch models export-dataset` and (where operators
look for it) `hazardwatch central export-dataset`. Argparse only here: OpenCV and the store load when
it runs, so `hazardwatch --help` works on a central box without OpenCV."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hazardwatch.central.cli import parse_since


def _run(args: argparse.Namespace) -> int:
    try:
        import cv2  # noqa: F401
    except ImportError:
        print("export-dataset decodes images with OpenCV: pip install 'hazardwatch[edge]'", file=sys.stderr)
        return 2
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.central.service import database_url
    from hazardwatch.central.store import Database
    from hazardwatch.configfile import load_config
    from hazardwatch.models.dataset_export import export_dataset

    cfg = load_config(args.config, CentralConfig)
    db = Database(database_url(cfg))
    try:
        db.migrate()
        summary = export_dataset(db, Path(args.out), args.since, cfg.site, with_clips=not args.no_clips)
    finally:
        db.close()
    print(json.dumps(summary.as_dict(), indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ex = sub.add_parser("export-dataset", help="write labelled evidence in the layout `hazardwatch models train` reads")
    ex.add_argument("--config", required=True, type=Path, help="central YAML config (for the database)")
    ex.add_argument("--since", type=parse_since, default=None, help="labels made since: Unix s, ISO time, or 7d")
    ex.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per hazard)")
    ex.add_argument("--no-clips", action="store_true", help="export snapshots only, no clip frames")
    ex.set_defaults(func=_run)
