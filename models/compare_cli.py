"""The `hazardwatch models compare` sub-command: a candidate beside the running model on labelled frames
(models/compare.py). Argparse only here; the models load when it runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _manifest(path: str) -> Path:
    p = Path(path)
    return p.with_suffix(".json") if p.suffix == ".onnx" else p


def _run(args: argparse.Namespace) -> int:
    from hazardwatch.models.compare import compare_paths, labelled_folders, render
    from hazardwatch.models.data import list_images
    from hazardwatch.models.evaluate import DEFAULT_MODELS, MODELS_DIR

    if not args.running and args.hazard not in DEFAULT_MODELS:
        print(f"no shipped {args.hazard} model: pass --running", file=sys.stderr)
        return 2
    running = _manifest(args.running) if args.running else MODELS_DIR / DEFAULT_MODELS[args.hazard]
    candidate = _manifest(args.candidate)
    missing = [str(p) for p in (running, candidate) if not p.is_file()]
    if missing:
        print(f"no such manifest: {', '.join(missing)}", file=sys.stderr)
        return 2
    if bool(args.labelled) == bool(args.positives or args.negatives):
        print(
            "give either --labelled DIR (export-dataset output) or --positives DIR and --negatives DIR", file=sys.stderr
        )
        return 2
    if args.labelled:
        try:
            pos_dirs, neg_dirs = ([p] for p in labelled_folders(Path(args.labelled), args.hazard))
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    else:
        pos_dirs, neg_dirs = [Path(p) for p in args.positives], [Path(p) for p in args.negatives]
        missing = [str(p) for p in (*pos_dirs, *neg_dirs) if not p.exists()]
        if missing:
            print(f"no such folder: {', '.join(missing)}", file=sys.stderr)
            return 2
    positives, negatives = list_images(pos_dirs), list_images(neg_dirs)
    if not positives and not negatives:
        print("no images under the given folders (jpg, jpeg, png, tif)", file=sys.stderr)
        return 2
    result = compare_paths(running, candidate, positives, negatives)
    print(json.dumps(result) if args.json else render(result))
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cp = sub.add_parser(
        "compare",
        help="a candidate model beside the running one on the same labelled frames (before a rollout)",
    )
    cp.add_argument("hazard", choices=("smoke", "waterlogging", "fallen_tree", "fire"))
    cp.add_argument("--candidate", required=True, help="the candidate's manifest (or ONNX beside it)")
    cp.add_argument("--running", help="the running model's manifest (default: the shipped model)")
    cp.add_argument("--labelled", help="an export-dataset folder: its positives and negatives of this hazard")
    cp.add_argument("--positives", action="append", default=[], help="folder of frames with the hazard")
    cp.add_argument("--negatives", action="append", default=[], help="folder of frames without it")
    cp.add_argument("--json", action="store_true", help="print one JSON object (every changed frame)")
    cp.set_defaults(func=_run)
