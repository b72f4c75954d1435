"""Read the time HPWREN cameras burn into the top-left corner of their frames (`20180725.121328 Santiago ...`).

Why: the HPWREN smoke frames (../shared/data/smoke-hpwren) are named by random Labelbox ids, so the stamp is
the only record of when, and in which order, a camera took them. This reader needs no OCR package and no
download: it is template matching with numpy and OpenCV, deterministic.

How: the stamp is `YYYYMMDD.HHMMSS` in a fixed-pitch font at the frame's top-left, at one of a few sizes (the
cameras with bigger originals were shrunk more). For each known size (`SIZES`: where the first digit starts,
the pitch, the extra gap of the dot, the text height) the 14 digit cells are cut at sub-pixel positions,
normalised (zero mean, unit norm) and compared with ten digit templates by normalised cross-correlation. The
date and the clock may each sit a pixel or so off the size's place, each digit a little more, the pitch may
differ by 2 % and the stamp may sit up to 1.5 pixels higher (cameras of one size differ that much); the size,
placement and colour channel (grey, or yellowness for yellow text on white glare) that fit best win. Each
position is read among the digits it can hold (`FORMAT`: month tens 0-1, minute tens 0-5 ...; the `20` of the
year is taken as printed). The confidence is the smallest margin, over the positions read, between the best
and the second-best template. A reading is refused (time None, with the reason) when no stamp fits, when a
digit is ambiguous (`MIN_MARGIN`), when the digits are no valid date and clock time of 2016-2020, or when the
stamp has a size no labelled frame taught templates for (`large`: matched against shrunk `medium` templates
only to recognise it; on the one such camera a mast hides the minutes anyway).

The templates are learnt from frames whose time a person read (`learn_templates`: the mean of each digit's
normalised cells) and kept in a small file (`TEMPLATES`), so reading needs no labels. `cross_check` measures
the reader on labelled frames with templates learnt from the other half of them.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

TEMPLATES = Path(__file__).resolve().parent / "smoke-hpwren" / "stamp-digits.npz"
FOLDERS = ("smoke", "unlabeled_hpwren")  # the HPWREN frames under the data folder
STRIP = (32, 240)  # rows, columns of the top-left corner that hold the stamp at every known size
YEARS = (2016, 2020)  # plausible years of the HPWREN smoke frames
MIN_FIT = 0.55  # mean best correlation of the digits below which no stamp is there (blank, other picture)
MIN_MARGIN = 0.08  # smallest best-minus-second correlation of a digit to trust a reading (cross_check: at
# 0.05 one glare-covered clock was misread on held-out frames; at 0.08 none was)
DIGITS = "0123456789"
# The digits each of the 14 positions can hold in 2016-2020 (YYYYMMDD HHMMSS; the whole is checked after).
FORMAT = ("2", "0", "12", DIGITS, "01", DIGITS, "0123", DIGITS, "012", DIGITS, "012345", DIGITS, "012345", DIGITS)
ANY_DIGIT = (DIGITS,) * 14  # every position read among all ten digits
CHANNELS = ("grey", "yellow")  # grey: light text on dark; yellow, (R+G)/2-B: yellow text on white glare
STEP = 0.25  # pixels between the placements tried
FRAME_REACH = 1.0  # pixels the date may sit off its size's place, each way
CLOCK_REACH = 1.25  # pixels the clock may sit off where the date puts it (cameras of one size differ a little)
DIGIT_REACH = 0.5  # pixels each digit may sit off its place (the pitch is not whole pixels)
PITCHES = (0.98, 1.0, 1.02)  # a camera's pitch relative to its size's
LIFTS = (0.0, 0.5, 1.0, 1.5)  # pixels the stamp may sit higher (the 2017 cameras: half a pixel to one)


@dataclass(frozen=True)
class StampSize:
    """Where a stamp of one size puts its digits, in frame pixels.

    Digit k of the date (k = 0..7) starts at `x0 + k * pitch`, digit k of the clock (k = 0..5) at
    `x0 + (8 + k) * pitch + dot` (the dot is narrower than a digit). A digit's cell is `width` x `rows` pixels
    from row `y0`, resampled to the grid of the `glyphs` templates.
    """

    name: str
    x0: float
    pitch: float
    dot: float
    rows: float
    width: float
    glyphs: str  # its own template set, or a smaller size's where no labelled frame has this size
    y0: float = 0.0

    def starts(self) -> np.ndarray:
        """Left edges of the 14 digit cells."""
        k = np.arange(14, dtype=np.float64)
        return self.x0 + k * self.pitch + np.where(k >= 8, self.dot, 0.0)

    @property
    def learnt(self) -> bool:
        """Whether labelled frames of this size taught its templates (else its readings are refused)."""
        return self.glyphs == self.name


# Measured on the labelled frames (small, medium: the start, pitch and dot gap at which each digit's cells are
# most alike) and on Boucher Hill West 2019-06-10 (large, the one camera of that size).
SIZES: tuple[StampSize, ...] = (
    StampSize("small", x0=0.25, pitch=3.92, dot=2.25, rows=6, width=4, glyphs="small"),
    StampSize("medium", x0=0.75, pitch=5.88, dot=3.5, rows=9, width=6, glyphs="medium"),
    StampSize("large", x0=0.75, pitch=9.5, dot=4.75, rows=14, width=9.5, glyphs="medium"),
)
GLYPH_GRID = {"small": (6, 4), "medium": (9, 6)}  # rows, columns of each template set


@dataclass(frozen=True)
class Templates:
    """Ten normalised digit templates per glyph set (`glyphs[name]`: 10 x rows x columns) and the sizes."""

    glyphs: Mapping[str, np.ndarray]
    sizes: tuple[StampSize, ...] = SIZES
    examples: int = 0  # labelled frames they were learnt from


@dataclass(frozen=True)
class StampReading:
    """What `read_stamp` made of a frame.

    `time` is None when refused, with `reason`. `text` holds the digits seen (`YYYYMMDD.HHMMSS`, also when
    refused), `confidence` the smallest best-minus-second template correlation over the positions read, `fit`
    the mean best correlation, `size` and `channel` where the stamp was found best.
    """

    time: datetime | None
    text: str
    confidence: float
    fit: float
    size: str
    channel: str
    reason: str | None = None


def _channels(frame: np.ndarray) -> dict[str, np.ndarray]:
    corner = frame[: STRIP[0], : STRIP[1]].astype(np.float32)
    if corner.ndim == 2:
        corner = np.repeat(corner[:, :, None], 3, axis=2)
    b, g, r = corner[:, :, 0], corner[:, :, 1], corner[:, :, 2]
    return {"grey": (b + g + r) / 3.0, "yellow": (r + g) / 2.0 - b}


def _normalise(cells: np.ndarray) -> np.ndarray:
    flat = cells.reshape(len(cells), -1).astype(np.float32)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6)


def _prepared(channel: np.ndarray, size: StampSize) -> np.ndarray:
    """`channel`, blurred where the size's cells are shrunk to its templates' grid (so samples average)."""
    rows, cols = GLYPH_GRID[size.glyphs]
    scale_x, scale_y = size.width / cols, size.rows / rows
    if max(scale_x, scale_y) <= 1.2:
        return channel
    sigma_x, sigma_y = (0.5 * np.sqrt(max(s * s - 1.0, 0.01)) for s in (scale_x, scale_y))
    return cv2.GaussianBlur(channel, (0, 0), sigma_x, sigmaY=sigma_y)


def _rows_inside(size: StampSize, lift: float) -> np.ndarray:
    """Template rows inside the frame when the stamp sits `lift` pixels higher (a camera that prints it
    partly above the top edge shows only its lower rows)."""
    rows = GLYPH_GRID[size.glyphs][0]
    return size.y0 - lift + (np.arange(rows) + 0.5) * size.rows / rows - 0.5 >= -0.5


def _cells(channel: np.ndarray, size: StampSize, shifts: np.ndarray, lift: float = 0.0) -> np.ndarray:
    """The 14 digit cells of a `_prepared` channel at each shift (pixels right of the size's place), bilinear
    on the size's template grid, normalised over the rows inside the frame: shifts x 14 x values."""
    rows, cols = GLYPH_GRID[size.glyphs]
    scale_x, scale_y = size.width / cols, size.rows / rows
    xs = (
        np.asarray(shifts, np.float64)[:, None, None]
        + size.starts()[None, :, None]
        + ((np.arange(cols) + 0.5) * scale_x - 0.5)[None, None, :]
    ).ravel()
    ys = (size.y0 - lift + (np.arange(rows) + 0.5) * scale_y - 0.5)[_rows_inside(size, lift)]
    map_x = np.broadcast_to(xs[None, :], (len(ys), xs.size)).astype(np.float32)
    map_y = np.broadcast_to(ys[:, None], (len(ys), xs.size)).astype(np.float32)
    out = cv2.remap(channel, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cells = out.reshape(len(ys), len(shifts), 14, cols).transpose(1, 2, 0, 3).reshape(len(shifts) * 14, -1)
    return _normalise(cells).reshape(len(shifts), 14, -1)


def _offsets() -> np.ndarray:
    """Placements (pixels off the size's place) the date and the clock may take."""
    reach = round((FRAME_REACH + CLOCK_REACH) / STEP)
    return np.arange(-reach, reach + 1) * STEP


def _all_cells(channel: np.ndarray, size: StampSize, lift: float = 0.0) -> np.ndarray:
    """Cells at every placement of `_offsets`, widened by DIGIT_REACH each way: placements x 14 x values."""
    reach = len(_offsets()) // 2 + round(DIGIT_REACH / STEP)
    return _cells(channel, size, np.arange(-reach, reach + 1) * STEP, lift)


def _correlations(channel: np.ndarray, size: StampSize, lift: float, templates: np.ndarray) -> np.ndarray:
    """Correlation of each digit cell with each template at every placement of `_offsets`, each digit at its
    best shift within DIGIT_REACH: placements x 14 x 10."""
    raw = _all_cells(channel, size, lift) @ _normalise(templates[:, _rows_inside(size, lift)]).T
    window = 2 * round(DIGIT_REACH / STEP) + 1
    return np.stack([raw[i : i + window].max(axis=0) for i in range(len(raw) - window + 1)])


def _placements() -> list[tuple[int, np.ndarray]]:
    """(date placement, the clock placements allowed with it), as indices into `_offsets`."""
    offsets = _offsets()
    return [
        (int(i), np.flatnonzero(np.abs(offsets - offsets[i]) <= CLOCK_REACH + 1e-9))
        for i in np.flatnonzero(np.abs(offsets) <= FRAME_REACH + 1e-9)
    ]


def _best_placement(correlations: np.ndarray, allowed: np.ndarray) -> tuple[float, np.ndarray]:
    """(fit, 14 x 10 correlations) where date and clock fit best; a digit a position cannot hold (`allowed`,
    14 x 10) scores -2, a position with one digit allowed does not count towards the fit."""
    scores = np.where(allowed[None], correlations, -2.0)
    read = allowed.sum(axis=1) > 1
    best = scores.max(axis=2)  # placements x 14: each digit's best template
    date_fit = best[:, :8][:, read[:8]].sum(axis=1)
    clock_fit = best[:, 8:][:, read[8:]].sum(axis=1)
    found = (-np.inf, scores[len(scores) // 2])
    for i, near in _placements():
        j = near[int(clock_fit[near].argmax())]
        fit = float((date_fit[i] + clock_fit[j]) / read.sum())
        if fit > found[0]:
            found = (fit, np.concatenate([scores[i, :8], scores[j, 8:]]))
    return found


def digits_of(time: datetime) -> str:
    """The 14 digits a stamp shows for `time`."""
    return time.strftime("%Y%m%d%H%M%S")


def _plausible(digits: str) -> tuple[datetime | None, str | None]:
    try:
        time = datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None, f"{digits[:8]}.{digits[8:]} is no valid date and time"
    if not YEARS[0] <= time.year <= YEARS[1]:
        return None, f"year {time.year} outside {YEARS[0]}-{YEARS[1]}"
    return time, None


def read_stamp(
    frame: np.ndarray, templates: Templates, min_margin: float = MIN_MARGIN, allowed: Sequence[str] = FORMAT
) -> StampReading:
    """The time stamped on `frame` (BGR or grey, as OpenCV reads it), or a refusal with the reason.

    `allowed` lists the digits each of the 14 positions may hold; a position with one is not read but taken
    as printed (the `20` of the year), so a logo or glare over it does not refuse the frame.
    """
    mask = np.array([[d in a for d in DIGITS] for a in allowed])
    channels = _channels(frame)
    best: tuple[float, str, StampSize, np.ndarray] | None = None
    for size in templates.sizes:
        glyphs = templates.glyphs.get(size.glyphs)
        if glyphs is None:
            continue
        for name in CHANNELS:
            prepared = _prepared(channels[name], size)
            for stretch in PITCHES:
                placed = replace(size, pitch=size.pitch * stretch)
                for lift in LIFTS:
                    fit, scores = _best_placement(_correlations(prepared, placed, lift, glyphs), mask)
                    if best is None or fit > best[0]:
                        best = (fit, name, size, scores)
    if best is None:
        raise ValueError("no templates for any stamp size")
    fit, channel, size, scores = best
    order = np.argsort(-scores, axis=1, kind="stable")
    top = scores[np.arange(14), order[:, 0]]
    margins = np.where(mask.sum(axis=1) > 1, top - scores[np.arange(14), order[:, 1]], np.inf)
    digits = "".join(DIGITS[d] for d in order[:, 0])
    confidence = float(margins.min())
    seen = StampReading(None, f"{digits[:8]}.{digits[8:]}", confidence, fit, size.name, channel)
    if fit < MIN_FIT:
        return replace(seen, reason=f"no stamp found (fit {fit:.2f} < {MIN_FIT})")
    if not size.learnt:
        return replace(
            seen,
            reason=f"{size.name} stamp: no labelled frame taught its digits ({size.glyphs} templates only find it)",
        )
    if confidence < min_margin:
        where = int(margins.argmin())
        return replace(seen, reason=f"digit {where + 1} ambiguous (margin {confidence:.3f} < {min_margin})")
    time, why = _plausible(digits)
    return replace(seen, time=time, reason=why)


def _text_rows(frame: np.ndarray) -> str:
    """The size whose text height matches the corner's (learning only: labels name no size). Small text ends
    at row 5, medium at row 8: the ratio of the rows 6-8 to the rows 0-4 in horizontal change tells them."""
    grey = _channels(frame)["grey"]
    energy = np.abs(np.diff(grey[:20, :80], axis=1)).mean(axis=1)
    below = energy[6:9].mean() / (energy[0:5].mean() + 1e-6)
    return "small" if below < 0.42 else "medium" if below < 0.8 else "large"


def learn_templates(examples: Iterable[tuple[np.ndarray, datetime]], sizes: Sequence[StampSize] = SIZES) -> Templates:
    """Digit templates from frames whose time a person read (deterministic): per size with templates of its
    own, the mean of each digit's normalised cells, taken first at the size's place, then again where each
    frame's digits best match those first means (placed as `read_stamp` places them)."""
    own = {s.name: s for s in sizes if s.learnt}
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in own}
    for frame, time in examples:
        name = _text_rows(frame)
        if name in own:
            found[name].append((_channels(frame)["grey"], np.array([int(c) for c in digits_of(time)])))
    glyphs: dict[str, np.ndarray] = {}
    for name, items in found.items():
        if not items:
            continue
        size, (rows, cols) = own[name], GLYPH_GRID[name]
        labels = np.concatenate([truth for _, truth in items])
        missing = sorted(set(range(10)) - set(labels.tolist()))
        if missing:
            raise ValueError(f"{name} stamps: no labelled frame shows digit(s) {missing}")
        first = np.concatenate([_cells(grey, size, np.zeros(1))[0] for grey, _ in items])
        means = _normalise(np.stack([first[labels == d].mean(axis=0) for d in range(10)]))
        again = np.concatenate([_aligned(grey, size, truth, means) for grey, truth in items])
        glyphs[name] = _normalise(np.stack([again[labels == d].mean(axis=0) for d in range(10)])).reshape(
            10, rows, cols
        )
    return Templates(glyphs, tuple(sizes), sum(len(v) for v in found.values()))


def _aligned(grey: np.ndarray, size: StampSize, truth: np.ndarray, means: np.ndarray) -> np.ndarray:
    """A labelled frame's 14 normalised cells where its true digits match `means` best."""
    cells = _all_cells(grey, size)
    window = 2 * round(DIGIT_REACH / STEP) + 1
    match = (cells * means[truth][None]).sum(axis=2)  # wide placements x 14
    spans = np.stack([match[i : i + window] for i in range(len(match) - window + 1)])  # placements x window x 14
    pick, best = spans.argmax(axis=1), spans.max(axis=1)
    date_fit, clock_fit = best[:, :8].sum(axis=1), best[:, 8:].sum(axis=1)
    score, i, j = -np.inf, 0, 0
    for a, near in _placements():
        b = near[int(clock_fit[near].argmax())]
        if date_fit[a] + clock_fit[b] > score:
            score, i, j = date_fit[a] + clock_fit[b], a, b
    where = [i] * 8 + [j] * 6
    return np.stack([cells[p + pick[p, d], d] for d, p in enumerate(where)])


def save_templates(templates: Templates, path: Path = TEMPLATES) -> None:
    """A small .npz (the same bytes for the same templates): a float16 array per glyph set, the sizes as JSON."""
    meta = {"sizes": [asdict(s) for s in templates.sizes], "examples": templates.examples}
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True))}
    arrays |= {f"glyphs_{k}": v.astype(np.float16) for k, v in sorted(templates.glyphs.items())}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            out.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def load_templates(path: Path = TEMPLATES) -> Templates:
    """The templates `save_templates` wrote (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        glyphs = {k.removeprefix("glyphs_"): data[k].astype(np.float32) for k in data.files if k.startswith("glyphs_")}
    return Templates(glyphs, tuple(StampSize(**s) for s in meta["sizes"]), int(meta["examples"]))


def find_frames(data: Path) -> dict[str, Path]:
    """File name -> path of every HPWREN frame (`FOLDERS` under `data`)."""
    return {p.name: p for folder in FOLDERS for p in sorted((data / folder).glob("*.jp*g"))}


_LABELLED = re.compile(r"\b(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\b")


def read_labels(paths: Iterable[Path]) -> dict[str, datetime]:
    """File name -> the time a person read off its stamp, from reviewed box lists (`boxes.txt`, read by
    `models.data.read_boxes`): the first `YYYY-MM-DD HH:MM:SS` of each note; notes with none (times given to
    the minute) are skipped."""
    from hazardwatch.models.data import read_boxes

    out: dict[str, datetime] = {}
    for path in paths:
        for name, box in read_boxes(Path(path)).items():
            found = _LABELLED.search(box.note)
            if found:
                out[name] = datetime.strptime(" ".join(found.groups()), "%Y-%m-%d %H:%M:%S")
    return out


def read_times(path: Path) -> dict[str, datetime]:
    """File name -> time of every frame a `stamps.txt` gives a time (refused frames, `-`, are left out)."""
    out: dict[str, datetime] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected <file name><TAB><time or -><TAB><confidence>")
        if fields[1] != "-":
            try:
                out[fields[0]] = datetime.strptime(fields[1], "%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise ValueError(f"{path}:{number}: {fields[1]!r} is no YYYY-MM-DD HH:MM:SS time") from None
    return out


@dataclass(frozen=True)
class Check:
    """One labelled frame read by templates learnt without it: the human time and the reading."""

    name: str
    human: datetime
    reading: StampReading

    @property
    def exact(self) -> bool:
        return self.reading.time == self.human


def cross_check(
    examples: Mapping[str, tuple[np.ndarray, datetime]],
    split: Callable[[Sequence[str]], tuple[list[str], list[str]]],
    min_margin: float = MIN_MARGIN,
) -> list[Check]:
    """Every labelled frame read once by templates learnt from the other part of `split` (two-fold)."""
    names = sorted(examples)
    first, second = split(names)
    out: list[Check] = []
    for learn, held in ((first, second), (second, first)):
        templates = learn_templates(examples[n] for n in learn)
        out += [Check(n, examples[n][1], read_stamp(examples[n][0], templates, min_margin)) for n in held]
    return sorted(out, key=lambda c: c.name)


def alternate_frames(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Every other frame in name order (random ids: a random half of each camera)."""
    return list(names[0::2]), list(names[1::2])


def by_day(times: Mapping[str, datetime]) -> Callable[[Sequence[str]], tuple[list[str], list[str]]]:
    """Every other day of the labelled frames (whole fires held out: harder than `alternate_frames`)."""

    def split(names: Sequence[str]) -> tuple[list[str], list[str]]:
        days = sorted({times[n].date() for n in names})
        first = set(days[0::2])
        return [n for n in names if times[n].date() in first], [n for n in names if times[n].date() not in first]

    return split


def summarise(checks: Sequence[Check]) -> dict[str, dict[str, int]]:
    """Per stamp size (and `all`): frames, read (a time given), exact among them, refused."""
    out: dict[str, Counter[str]] = {}
    for c in checks:
        for key in (c.reading.size, "all"):
            tally = out.setdefault(key, Counter())
            tally["frames"] += 1
            tally["read"] += c.reading.time is not None
            tally["exact"] += c.exact
            tally["refused"] += c.reading.time is None
    return {k: {f: v[f] for f in ("frames", "read", "exact", "refused")} for k, v in sorted(out.items())}


def _read_image(path: Path) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def read_frames(frames: Mapping[str, Path], templates: Templates) -> dict[str, StampReading]:
    """`read_stamp` of every frame (a file OpenCV cannot decode is refused with that reason)."""
    out: dict[str, StampReading] = {}
    for name, path in sorted(frames.items()):
        image = _read_image(path)
        if image is None:
            out[name] = StampReading(None, "", 0.0, 0.0, "-", "-", reason=f"{path}: cannot decode")
        else:
            out[name] = read_stamp(image, templates)
    return out


def _rate(read: int, exact: int) -> str:
    return f"{exact}/{read} = {100.0 * exact / read:.1f} %" if read else "none read"


def write_stamps(
    data: Path, out: Path, labels: Sequence[Path], templates_path: Path = TEMPLATES, learn: bool = False
) -> dict[str, object]:
    """Read every frame under `data`, write `out` (a `#` header, then `<file name><TAB><time or -><TAB>
    <confidence>` sorted by name) and return a summary. With `learn`, the templates are learnt from the
    labelled frames of `labels` first and saved to `templates_path`; the two-fold check runs whenever labelled
    frames are there."""
    frames = find_frames(data)
    if not frames:
        raise ValueError(f"no frames under {data} ({', '.join(FOLDERS)})")
    times = read_labels(labels)
    labelled = {}
    for name in sorted(set(times) & set(frames)):
        image = _read_image(frames[name])
        if image is not None:
            labelled[name] = (image, times[name])
    splits = {"alternate frames": alternate_frames, "by day": by_day(times)}
    checks = {k: cross_check(labelled, split) for k, split in splits.items()} if labelled else {}
    if learn:
        if not labelled:
            raise ValueError("--learn needs labelled frames (--labels) that are under --data")
        templates = learn_templates(labelled.values())
        save_templates(templates, templates_path)
    else:
        templates = load_templates(templates_path)
    readings = read_frames(frames, templates)
    differ = [n for n in labelled if readings[n].time is not None and readings[n].time != times[n]]
    agree = sum(1 for n in labelled if readings[n].time == times[n])
    refused_labelled = sum(1 for n in labelled if readings[n].time is None)
    by_size = Counter(r.size for r in readings.values())
    read_by_size = Counter(r.size for r in readings.values() if r.time is not None)
    label_files = ", ".join(Path(p).name for p in labels) or "none"
    given = sum(1 for r in readings.values() if r.time is not None)
    sizes = ", ".join(f"{s} {read_by_size[s]} of {by_size[s]}" for s in sorted(by_size))
    header = [
        "HPWREN smoke frames: the time each camera burnt into the frame's top-left corner (YYYYMMDD.HHMMSS), read "
        "by `hazardwatch models read-stamps` (hazardwatch/models/stamps.py): the 14 digits matched against digit "
        f"templates ({templates_path.name}, learnt from {templates.examples} frames whose stamp people read in "
        f"{label_files}) by normalised cross-correlation, no OCR. A frame is refused ('-') when a digit's best and "
        f"second-best template are closer than {MIN_MARGIN}, when no stamp fits, when the digits are no valid date "
        f"and time of {YEARS[0]}-{YEARS[1]}, or when the stamp has a size no labelled frame taught (large: Boucher "
        "Hill West, where a mast hides the minutes).",
        f"Frames: {len(readings)}; given a time: {given}; refused: {len(readings) - given}. Given a time, per stamp "
        f"size: {sizes}.",
    ]
    if checks:
        header.append(
            "Checked two-fold on the labelled frames (templates learnt on one half, read on the other, both ways); "
            "exact = the human time, of the frames given a time:"
        )
        for split, found in checks.items():
            parts = [
                f"{size} {_rate(t['read'], t['exact'])} ({t['refused']} of {t['frames']} refused)"
                for size, t in summarise(found).items()
            ]
            header.append(f"- {split}: " + "; ".join(parts))
        header.append(
            f"With the templates written: {agree} of {len(labelled)} labelled frames agree with the human time, "
            f"{len(differ)} differ, {refused_labelled} are refused. Where they differ (check by eye who is right):"
        )
        header += [
            f"- {n}: human {times[n]:%Y-%m-%d %H:%M:%S}, stamp read {readings[n].time:%Y-%m-%d %H:%M:%S} "
            f"(confidence {readings[n].confidence:.3f})"
            for n in differ
        ]
    header.append(
        "Format: <file name><TAB><YYYY-MM-DD HH:MM:SS, or - where refused><TAB><confidence: the smallest margin "
        "between a digit's best and second-best template correlation>."
    )
    lines = [f"# {line}" for h in header for line in textwrap.wrap(h, 114, subsequent_indent="  ")]
    for name, r in sorted(readings.items()):
        when = f"{r.time:%Y-%m-%d %H:%M:%S}" if r.time is not None else "-"
        lines.append(f"{name}\t{when}\t{max(r.confidence, 0.0):.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "frames": len(readings),
        "read": given,
        "refused": len(readings) - given,
        "refused_why": dict(Counter(_why(r.reason) for r in readings.values() if r.time is None)),
        "labelled": len(labelled),
        "agree_with_labels": agree,
        "differ_from_labels": {
            n: {"human": f"{times[n]:%Y-%m-%d %H:%M:%S}", "stamp": f"{readings[n].time:%Y-%m-%d %H:%M:%S}"}
            for n in differ
        },
        "labelled_refused": refused_labelled,
        "held_out": {k: summarise(v) for k, v in checks.items()},
        "out": str(out),
    }


def _why(reason: str | None) -> str:
    """A refusal's kind, for counting."""
    text = reason or ""
    for kind in ("ambiguous", "no stamp", "no labelled frame", "no valid", "outside", "cannot decode"):
        if kind in text:
            return kind
    return text
