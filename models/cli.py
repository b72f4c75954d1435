"""`hazardwatch models ...`: train, eval, export, export-dataset, review-sheet, check. torch is imported only
inside train/export, so `hazardwatch --help`, `models eval` and the edge never load it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from hazardwatch.models.compare_cli import add_parser as add_compare  # argparse only
from hazardwatch.models.dataset_cli import add_parser as add_export_dataset  # argparse only

if TYPE_CHECKING:
    from hazardwatch.models.data import Review

T = TypeVar("T")

HAZARDS = ("smoke", "waterlogging", "fallen_tree")
BOXES_HELP = (
    "reviewed boxes of unlabelled frames that hold smoke ('<file name><TAB><x1> <y1> <x2> <y2><TAB><what>' per line, "
    "pixels; smoke only): trained on as positives"
)


def _read_lists(flag: str, paths: list[str], read: Callable[[Path], Mapping[str, T]]) -> dict[str, T] | None:
    """The reviewed lists given with `flag`, merged; None (after saying why) when one is unreadable."""
    merged: dict[str, T] = {}
    for path in paths:
        try:
            merged.update(read(Path(path)))
        except (OSError, ValueError) as exc:
            print(f"{flag}: {exc}", file=sys.stderr)
            return None
    return merged


def _review(exclude: list[str], boxes: list[str]) -> Review | None:
    """What reviewers found: frames to leave out (--exclude) and frames they boxed (--boxes)."""
    from hazardwatch.models.data import Review, read_boxes, read_exclusions

    excluded = _read_lists("--exclude", exclude, read_exclusions)
    boxed = _read_lists("--boxes", boxes, read_boxes)
    if excluded is None or boxed is None:
        return None
    return Review(excluded, boxed)


def _train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("training needs torch: pip install 'hazardwatch[train]'", file=sys.stderr)
        return 2
    from hazardwatch.models import train
    from hazardwatch.models.data import ReviewError

    command = train.command_line()
    data = [Path(d) for d in args.data]
    for d in data:
        if not d.is_dir():
            print(f"no such data folder: {d}", file=sys.stderr)
            return 2
    if (args.exclude or args.boxes) and args.hazard != "smoke":
        print(
            f"--exclude and --boxes apply to smoke only (its unlabelled negatives), not {args.hazard}", file=sys.stderr
        )
        return 2
    out = Path(args.out)
    work = Path(args.work) / out.name
    if args.hazard == "smoke":
        review = _review(args.exclude, args.boxes)
        if review is None:
            return 2
        try:
            summary = train.train_smoke(
                data, out, args.epochs, work, Path(args.cache), command, review, version=args.version
            )
        except ReviewError as exc:  # raised before any training: nothing written
            print(f"--boxes: {exc}", file=sys.stderr)
            return 2
    elif args.hazard == "waterlogging":
        summary = train.train_waterlogging(data, out, work, command, version=args.version)
    else:
        summary = train.build_fallen_tree(data[0], out, command, version=args.version)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _train_reference(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("training needs torch: pip install 'hazardwatch[train]'", file=sys.stderr)
        return 2
    from hazardwatch.models import train
    from hazardwatch.models.data import ReviewError
    from hazardwatch.models.train_reference import train_smoke_reference

    data = [Path(d) for d in args.data]
    out = Path(args.out)
    for d in [*data, out]:
        if not d.is_dir():
            print(f"no such folder: {d}", file=sys.stderr)
            return 2
    manifest = out / f"{out.name}-int8.json"
    if not manifest.is_file():
        print(f"{manifest}: no cold-start model to add the reference head to", file=sys.stderr)
        return 2
    review = _review(args.exclude, args.boxes)
    if review is None:
        return 2
    try:
        summary = train_smoke_reference(
            data, out, Path(args.work) / out.name, train.command_line(), review, args.version, args.epochs,
            combine=args.combine, hard_share=args.hard_negatives, pca_cells=args.pca_cells,
            fine_projection=args.projection,
        )  # fmt: skip
    except ReviewError as exc:  # raised before any training: nothing written
        print(f"--boxes: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _review_sheet(args: argparse.Namespace) -> int:
    try:
        import scipy  # noqa: F401  (the view groups are clusters of the frames' layouts)
    except ImportError:
        print("review-sheet groups frames by view with scipy: pip install 'hazardwatch[train]'", file=sys.stderr)
        return 2
    from hazardwatch.models.data import ReviewError, assign_view_groups, smoke_samples
    from hazardwatch.models.review_sheet import region, write_review_sheets

    data = [Path(d) for d in args.data]
    missing = [d for d in data if not d.is_dir()]
    if missing:
        print(f"no such data folder: {missing[0]}", file=sys.stderr)
        return 2
    try:
        part = region(*args.region)
    except ValueError as exc:
        print(f"--region: {exc}", file=sys.stderr)
        return 2
    review = _review(args.exclude, args.boxes)
    if review is None:
        return 2
    try:
        samples = review.apply(assign_view_groups(smoke_samples(data)))
    except ReviewError as exc:
        print(f"--boxes: {exc}", file=sys.stderr)
        return 2
    want = {"negatives": (False,), "positives": (True,), "all": (False, True)}[args.frames]
    chosen = [s for s in samples if s.group.rsplit("/", 1)[-1] == args.view and s.positive in want]
    if not chosen:
        groups = sorted({s.group.rsplit("/", 1)[-1] for s in samples})
        print(f"--view {args.view}: no such {args.frames} frames; view groups: {', '.join(groups)}", file=sys.stderr)
        return 2
    sheets, index = write_review_sheets(chosen, part, Path(args.out))
    print(json.dumps({"frames": len(chosen), "sheets": [str(p) for p in sheets], "index": str(index)}, indent=2))
    return 0


def _read_stamps(args: argparse.Namespace) -> int:
    import cv2

    from hazardwatch.models.stamps import TEMPLATES, write_stamps

    cv2.setNumThreads(1)
    here = TEMPLATES.parent
    labels = [Path(p) for p in args.labels] if args.labels else [here / "boxes.txt", here / "boxes-validation.txt"]
    templates = Path(args.templates) if args.templates else TEMPLATES
    try:
        summary = write_stamps(Path(args.data), Path(args.out), labels, templates, learn=args.learn)
    except (OSError, ValueError) as exc:
        print(f"read-stamps: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from hazardwatch.models.evaluate import DEFAULT_MODELS, MODELS_DIR, evaluate_folders, load_detector, plot_pr

    if not args.model and args.hazard not in DEFAULT_MODELS:
        print(f"no shipped {args.hazard} model: pass --model", file=sys.stderr)
        return 2
    model = Path(args.model) if args.model else MODELS_DIR / DEFAULT_MODELS[args.hazard]
    if model.suffix == ".onnx":
        model = model.with_suffix(".json")
    if bool(args.cameras) == bool(args.positives or args.negatives):
        print("give either --cameras ROOT or --positives DIR and --negatives DIR", file=sys.stderr)
        return 2
    missing = [
        p for p in [*args.positives, *args.negatives, *([args.cameras] if args.cameras else [])] if not Path(p).exists()
    ]
    if missing:
        print(f"no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    det = load_detector(model)
    if getattr(det, "hazard", None) is not None and det.hazard.value != args.hazard:
        print(f"{model} is a {det.hazard.value} model, not {args.hazard}", file=sys.stderr)
        return 2
    if args.zoom_band and not args.cameras:
        print("--zoom-band: only with --cameras (each camera's crops learn references of their own)", file=sys.stderr)
        return 2
    if args.cameras:
        from pydantic import ValidationError

        from hazardwatch.contract import Hazard
        from hazardwatch.edge.camera_config import ZoomConfig
        from hazardwatch.models.evaluate_cameras import LayoutError, evaluate_cameras

        zoom = None
        if args.zoom_band:
            spec = getattr(det, "reference", None)
            if spec is None or spec.zoom is None:
                print(f"--zoom-band: {model} has no reference.zoom in its manifest", file=sys.stderr)
                return 2
            try:
                zoom = ZoomConfig(band=tuple(args.zoom_band))
            except ValidationError as exc:
                print(f"--zoom-band: {exc.errors()[0]['msg']}", file=sys.stderr)
                return 2
        try:
            res = evaluate_cameras(det, Hazard(args.hazard), Path(args.cameras), zoom=zoom)
        except LayoutError as exc:
            print(f"--cameras: {exc}", file=sys.stderr)
            return 2
    else:
        res = evaluate_folders(det, [Path(p) for p in args.positives], [Path(n) for n in args.negatives])
    if res["n_pos"] + res["n_neg"] == 0:
        print("no images under the given folders (jpg, jpeg, png, tif)", file=sys.stderr)
        return 2
    message = plot_pr(res, Path(args.plot)) if args.plot else None
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    if args.json:
        print(json.dumps(public))
    else:
        for k, v in public.items():
            print(f"{k:>13}: {v}")
    if message:
        print(message, file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    """Re-export a trained head (var/models/NAME/head.pt) without retraining."""
    try:
        import torch
    except ImportError:
        print("export needs torch: pip install 'hazardwatch[train]'", file=sys.stderr)
        return 2
    from hazardwatch.models import train

    out = Path(args.out)
    head = Path(args.work) / out.name / "head.pt"
    if not head.is_file():
        print(f"no trained head at {head}: run `hazardwatch models train` first", file=sys.stderr)
        return 2
    manifest = json.loads((out / f"{out.name}-int8.json").read_text())
    manifest["name"] = out.name
    data_root = Path(args.data_root)
    pos, neg = train.read_validation_list(out / "validation.txt", data_root)
    from hazardwatch.models.data import Sample, list_images

    val = [Sample(p, True) for p in pos] + [Sample(n, False) for n in neg]
    state = torch.load(head, weights_only=True)
    net: torch.nn.Module
    if args.hazard == "smoke":
        from hazardwatch.models import smoke

        net = smoke.build(state)
        example = torch.zeros(1, 3, smoke.HEIGHT, smoke.WIDTH)
        policy = {"min_precision": 0.9, "max_fpr": 0.005}
    elif args.hazard == "waterlogging":
        from hazardwatch.models import flood
        from hazardwatch.models.backbone import load_pretrained

        net = flood.FloodNet(load_pretrained())
        net.head.load_state_dict(state)
        net.eval()
        example = torch.zeros(1, 3, flood.HEIGHT, flood.WIDTH)
        policy = train.FLOOD_POLICY
    else:
        print("fallen_tree has no ONNX model to export (runtime scene_change)", file=sys.stderr)
        return 2
    base = {k: v for k, v in manifest.items() if k not in ("file", "sha256", "metrics", "threshold", "precision")}
    # Calibrate int8 on frames of the same folders that validation does not hold: calibrating on the
    # validation frames would let them shape the quantisation they are then used to measure.
    held = {p.resolve() for p in pos + neg}
    pool = [p for p in list_images(sorted({p.parent for p in pos + neg})) if p.resolve() not in held]
    if not pool:
        print(f"no frames outside the validation split under {data_root} to calibrate int8 on", file=sys.stderr)
        return 2
    calib = pool[:: max(1, len(pool) // 64)][:64]
    summary = train.ship(net, example, out, base, val, calib, policy, fp32_dir=head.parent / "fp32")
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _check(args: argparse.Namespace) -> int:
    from hazardwatch.models.backbone import sanity_check

    top = sanity_check()
    ok = 281 <= top["chelsea"] <= 287 and top["coffee"] == 967
    print(json.dumps({**top, "ok": ok}))
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `models` with its subcommands to the `hazardwatch` parser."""
    models = subparsers.add_parser("models", help="train, evaluate and export the hazard models")
    sub = models.add_subparsers(dest="models_command", required=True)
    add_export_dataset(sub)
    add_compare(sub)

    tr = sub.add_parser("train", help="split, train, export fp32 + int8 and write manifests (needs [train])")
    tr.add_argument("hazard", choices=HAZARDS)
    tr.add_argument("--data", nargs="+", action="extend", required=True, help="data folder(s)")
    tr.add_argument("--out", required=True, help="model folder, e.g. models/smoke-hpwren")
    tr.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs of the smoke head")
    tr.add_argument("--version", default="1.0.0", help="model version written to the manifests (bump on retraining)")
    tr.add_argument("--work", default="var/models", help="checkpoints (never shipped)")
    tr.add_argument("--cache", default="var/cache", help="cached activations")
    tr.add_argument(
        "--exclude",
        action="append",
        default=[],
        help="reviewed list of frames to leave out ('<file name><TAB><reason>' per line; smoke only)",
    )
    tr.add_argument("--boxes", action="append", default=[], help=BOXES_HELP)
    tr.set_defaults(func=_train)

    tr_ref = sub.add_parser(
        "train-reference",
        help="add the per-camera reference head to a shipped smoke model (needs [train]; docs/models.md)",
    )
    tr_ref.add_argument("hazard", choices=("smoke",))
    tr_ref.add_argument("--data", nargs="+", action="extend", required=True, help="data folder(s)")
    tr_ref.add_argument("--out", required=True, help="the model folder holding the cold-start int8 model")
    tr_ref.add_argument("--epochs", type=int, default=6, help="passes over the reference pairs")
    tr_ref.add_argument(
        "--combine", choices=("geo", "mean"), default="geo", help="how the scales' probabilities meet (docs/models.md)"
    )
    tr_ref.add_argument(
        "--hard-negatives", type=float, default=0.0, help="share of negatives mined from pass 2 (docs/models.md)"
    )
    tr_ref.add_argument("--pca-cells", type=int, default=150, help="random cells per frame the projections are fit on")
    tr_ref.add_argument(
        "--projection",
        choices=("pca", "linear", "branch"),
        default="branch",
        help="the stride-16 embedding: its PCA (1.4.0), a linear map or a small branch trained with the head "
        "(1.5.0: branch; docs/models.md)",
    )
    tr_ref.add_argument("--version", required=True, help="version of the model with the reference head")
    tr_ref.add_argument("--work", default="var/models", help="checkpoints and the validation camera layout")
    tr_ref.add_argument("--exclude", action="append", default=[], help="reviewed list of frames to leave out")
    tr_ref.add_argument("--boxes", action="append", default=[], help=BOXES_HELP)
    tr_ref.set_defaults(func=_train_reference)

    rs = sub.add_parser(
        "review-sheet",
        help="contact sheets of one smoke view group's frames (overlay time, magnified region) to read by eye",
    )
    rs.add_argument("--data", nargs="+", action="extend", required=True, help="smoke data folder(s)")
    rs.add_argument("--view", required=True, help="view group, as in validation-cameras.txt (e.g. view017)")
    rs.add_argument(
        "--region", nargs=4, type=float, default=(0.0, 0.3, 1.0, 0.8), metavar=("X1", "Y1", "X2", "Y2"),
        help="part of the frame to magnify, relative (default: the horizon band 0.3-0.8 of the height)",
    )  # fmt: skip
    rs.add_argument("--frames", choices=("negatives", "positives", "all"), default="negatives")
    rs.add_argument("--exclude", action="append", default=[], help="reviewed list of frames already left out")
    rs.add_argument("--boxes", action="append", default=[], help=BOXES_HELP + "; shown as positives with their box")
    rs.add_argument("--out", required=True, help="path prefix of the sheets (-0.png, -1.png ...) and index (.tsv)")
    rs.set_defaults(func=_review_sheet)

    st = sub.add_parser("read-stamps", help="read the time stamp of every HPWREN smoke frame (template matching)")
    st.add_argument("--data", required=True, help="folder holding smoke/ and unlabeled_hpwren/")
    st.add_argument("--out", required=True, help="list to write, e.g. models/smoke-hpwren/stamps.txt")
    st.add_argument(
        "--labels",
        action="append",
        help="lists of frames with a human-read time (default: boxes.txt, boxes-validation.txt)",
    )
    st.add_argument("--templates", help="digit templates (default: models/smoke-hpwren/stamp-digits.npz)")
    st.add_argument("--learn", action="store_true", help="learn the templates from --labels and write them first")
    st.set_defaults(func=_read_stamps)

    ev = sub.add_parser("eval", help="measure a model on folders of positives and negatives, as the edge runs it")
    ev.add_argument("hazard", choices=(*HAZARDS, "fire"))
    ev.add_argument("--positives", action="append", default=[], help="folder of frames with the hazard")
    ev.add_argument("--negatives", action="append", default=[], help="folder of frames without it")
    ev.add_argument(
        "--cameras",
        help="ROOT/<camera>/{reference,positives,negatives}/: each camera learns its normal from reference/ first",
    )
    ev.add_argument(
        "--zoom-band",
        nargs=2,
        type=float,
        metavar=("TOP", "BOTTOM"),
        help="with --cameras: every camera looks at this band of its height closer (camera config hazards.<h>.zoom)",
    )
    ev.add_argument("--model", help="manifest or ONNX path (default: the shipped model)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--plot", help="write a precision-recall curve PNG (needs matplotlib)")
    ev.set_defaults(func=_eval)

    ex = sub.add_parser("export", help="re-export a trained head to fp32 + int8 ONNX with manifests")
    ex.add_argument("hazard", choices=HAZARDS)
    ex.add_argument("--out", required=True, help="model folder holding the manifest and validation.txt")
    ex.add_argument("--work", default="var/models")
    ex.add_argument("--data-root", default="../shared/data", help="root the validation list is relative to")
    ex.set_defaults(func=_export)

    ck = sub.add_parser("check-backbone", help="classify two sample photos to prove the weights load (needs [train])")
    ck.set_defaults(func=_check)
