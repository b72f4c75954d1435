"""Data folders -> labelled image lists and leak-free train/validation splits (no torch here).

Why grouping by look: the HPWREN file names are Labelbox ids (upload time, not capture time or
camera), so the camera and the moment are recovered from the pixels. Frames whose edge layout
(ridgelines, towers, horizon) correlates strongly are one camera view at nearby times, and such a
group never straddles the split.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
SPLIT_SEED = 20240601


@dataclass(frozen=True)
class Sample:
    """One image with its label; `box` is (x1, y1, x2, y2) in relative coordinates when known."""

    path: Path
    positive: bool
    box: tuple[float, float, float, float] | None = None
    group: str = ""


def list_images(folders: Iterable[Path]) -> list[Path]:
    """Every image under the folders, sorted, so runs are reproducible."""
    out: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            out.append(folder)
            continue
        out.extend(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    return sorted(out)


def read_bgr(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """BGR uint8, whatever the file (TIFF, PNG with alpha, greyscale); `flags` may ask OpenCV to reduce it."""
    img = cv2.imread(str(path), flags)
    if img is None:
        raise OSError(f"{path}: cannot decode image")
    return img


def read_voc_box(xml_path: Path) -> tuple[float, float, float, float] | None:
    """The first object's box of a Pascal VOC file, relative to the image size."""
    root = ET.parse(xml_path).getroot()
    size = root.find("size")
    obj = root.find("object/bndbox")
    if size is None or obj is None:
        return None
    w = float(size.findtext("width") or 0)
    h = float(size.findtext("height") or 0)
    if w <= 0 or h <= 0:
        return None
    vals = [float(obj.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")]
    return (vals[0] / w, vals[1] / h, vals[2] / w, vals[3] / h)


def fingerprint(img: np.ndarray) -> np.ndarray:
    """Unit vector of the 32x24 gradient-magnitude thumbnail: the view's layout, not its lighting."""
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    g = cv2.resize(g, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)).ravel()
    mag = (mag - mag.mean()) / (mag.std() + 1e-6)
    return mag / np.sqrt(mag.size)


def view_groups(prints: np.ndarray, max_distance: float = 0.4) -> np.ndarray:
    """Average-linkage clusters of fingerprints (correlation distance): one id per camera view."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(prints) < 2:
        return np.ones(len(prints), int)
    z = linkage(prints, "average", metric="correlation")
    return fcluster(z, max_distance, "distance")


def choose_val_groups(
    groups: Sequence[str], positive: Sequence[bool], val_fraction: float = 0.25, tries: int = 4000
) -> set[str]:
    """Pick whole groups for validation so that about `val_fraction` of positives and of negatives land there."""
    rng = np.random.default_rng(SPLIT_SEED)
    names = sorted(set(groups))
    pos = {g: 0 for g in names}
    neg = {g: 0 for g in names}
    for g, p in zip(groups, positive, strict=True):
        (pos if p else neg)[g] += 1
    tot_p, tot_n = max(1, sum(pos.values())), max(1, sum(neg.values()))
    best: tuple[float, set[str]] = (np.inf, set())
    for _ in range(tries):
        pick = {g for g in names if rng.random() < val_fraction}
        if not pick or len(pick) == len(names):
            continue
        fp = sum(pos[g] for g in pick) / tot_p
        fn = sum(neg[g] for g in pick) / tot_n
        cost = abs(fp - val_fraction) + abs(fn - val_fraction)
        if tot_p > 1 and sum(pos[g] for g in pick) == 0:
            cost += 1.0
        if cost < best[0]:
            best = (cost, pick)
    return best[1]


def smoke_samples(data_dirs: Sequence[Path]) -> list[Sample]:
    """HPWREN layout: smoke/ (+ annotations_voc/) are positives, unlabeled_hpwren/ negatives.

    Any other folder is read as positives when named like smoke/fire, otherwise as negatives.
    """
    samples: list[Sample] = []
    for root in data_dirs:
        root = Path(root)
        ann = root / "annotations_voc"
        for path in list_images([root]):
            rel = path.relative_to(root).parts[0].lower()
            positive = bool(re.search(r"smoke|fire", rel))
            box = None
            if positive and (ann / (path.stem + ".xml")).is_file():
                box = read_voc_box(ann / (path.stem + ".xml"))
            samples.append(Sample(path, positive, box))
    return samples


def assign_view_groups(samples: list[Sample], max_distance: float = 0.4) -> list[Sample]:
    """Tag every sample with its camera-view group id (prefixed by its data folder)."""
    prints = np.stack([fingerprint(read_bgr(s.path, cv2.IMREAD_REDUCED_COLOR_4)) for s in samples])
    labels = view_groups(prints, max_distance)
    return [
        Sample(s.path, s.positive, s.box, f"{s.path.parent.parent.name}/view{int(g):03d}")
        for s, g in zip(samples, labels, strict=True)
    ]


def split_samples(samples: list[Sample], val_fraction: float = 0.25) -> tuple[list[Sample], list[Sample]]:
    """Whole groups go to validation; the rest train. Deterministic for the same data."""
    val_groups = choose_val_groups([s.group for s in samples], [s.positive for s in samples], val_fraction)
    train = [s for s in samples if s.group not in val_groups]
    val = [s for s in samples if s.group in val_groups]
    return train, val


def read_exclusions(path: Path) -> dict[str, str]:
    """`file name<TAB>reason` per line (`#` comments): frames a reviewer took out of the data.

    Why: the unlabelled HPWREN frames used as negatives are not guaranteed smoke-free; a frame whose
    plume a reviewer could see is neither a negative nor a boxed positive, so it is left out.
    """
    out: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition("\t")
        if not sep or not reason.strip():
            raise ValueError(f"{path}:{n}: expected '<file name><TAB><reason>', got {line!r}")
        out[name.strip()] = reason.strip()
    return out


@dataclass(frozen=True)
class ReviewedBox:
    """A reviewer's box around the smoke of an unlabelled frame, in the frame's pixels, and what was seen."""

    x1: int
    y1: int
    x2: int
    y2: int
    note: str


def read_boxes(path: Path) -> dict[str, ReviewedBox]:
    """`file name<TAB>x1 y1 x2 y2<TAB>what was seen` per line (`#` comments), pixels of the frame.

    Why: a frame whose plume a reviewer saw is only left out (`excluded.txt`) until someone boxes it;
    boxed, it is a positive like the dataset's own. The frames cannot be committed, so the boxes are.
    """
    out: dict[str, ReviewedBox] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        where = f"{path}:{n}"
        if len(parts) != 3 or not parts[2].strip():
            raise ValueError(f"{where}: expected '<file name><TAB><x1> <y1> <x2> <y2><TAB><what was seen>'")
        name, box = parts[0].strip(), parts[1].split()
        try:
            x1, y1, x2, y2 = (int(v) for v in box)
        except ValueError:
            raise ValueError(f"{where}: box {parts[1]!r} is not four whole pixel numbers") from None
        if not (0 <= x1 < x2 and 0 <= y1 < y2):
            raise ValueError(f"{where}: box {parts[1]!r} needs 0 <= x1 < x2 and 0 <= y1 < y2")
        if name in out:
            raise ValueError(f"{where}: {name} is boxed twice")
        out[name] = ReviewedBox(x1, y1, x2, y2, parts[2].strip())
    return out


class ReviewError(ValueError):
    """A reviewed box that does not fit the data (its frame is a labelled positive, or it leaves the frame)."""


@dataclass(frozen=True)
class Review:
    """What reviewers found among the unlabelled frames: frames to leave out and frames they boxed.

    A boxed frame wins over its exclusion (the exclusion records the finding, the box what to learn).
    Applied after the split, so a review never moves the camera-view groups.
    """

    excluded: Mapping[str, str] = field(default_factory=dict)
    boxed: Mapping[str, ReviewedBox] = field(default_factory=dict)

    def apply(self, samples: Sequence[Sample]) -> list[Sample]:
        """Boxed frames become positives with their box (relative); excluded ones not boxed are dropped."""
        out = []
        for s in samples:
            found = self.boxed.get(s.path.name)
            if found is None:
                if s.path.name not in self.excluded:
                    out.append(s)
                continue
            if s.positive:
                raise ReviewError(f"{s.path}: boxed by a reviewer but already a labelled positive")
            h, w = read_bgr(s.path, cv2.IMREAD_GRAYSCALE).shape[:2]
            if found.x2 > w or found.y2 > h:
                raise ReviewError(f"{s.path}: reviewed box {found} reaches outside the {w}x{h} frame")
            box = (found.x1 / w, found.y1 / h, found.x2 / w, found.y2 / h)
            out.append(Sample(s.path, True, box, s.group))
        return out


def read_source_md(folder: Path) -> dict[str, str]:
    """Licence and attribution lines of a data folder's SOURCE.md, for the manifest's provenance."""
    path = Path(folder) / "SOURCE.md"
    if not path.is_file():
        return {"name": Path(folder).name, "licence": "unknown (no SOURCE.md)", "url": "", "attribution": ""}
    text = path.read_text(encoding="utf-8", errors="replace")
    title = text.splitlines()[0].lstrip("# ").strip() if text else Path(folder).name
    url = re.search(r"https?://[^\s)]+", text)
    lic_lines = [ln.strip(" -*") for ln in text.splitlines() if re.search(r"licen[cs]e", ln, re.I)]
    attr_lines = [ln.strip(" -*") for ln in text.splitlines() if re.search(r"credit|attribution", ln, re.I)]
    return {
        "name": f"{Path(folder).name}: {title}"[:200],
        "url": url.group(0) if url else "",
        "licence": " ".join(lic_lines)[:600] or "see SOURCE.md",
        "attribution": " ".join(attr_lines)[:600],
    }
