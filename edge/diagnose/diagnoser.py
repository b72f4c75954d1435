"""Per-camera diagnosis: can this camera still see? Learnt reference, confidences, hysteresis.

Why a per-camera reference: "blurred" or "turned away" only mean something against what this
camera usually shows. The reference (structure map, block texture and brightness, sharpness and the
usual alignment) is an exponential average over healthy looks, so slow changes (daylight, seasons)
are absorbed while a sudden change is diagnosed. Night / IR looks (greyscale) keep a reference of
their own: the IR image of a scene is not its daylight image.

Why hysteresis: a passing truck or a cloud shadow can make one look odd. A diagnosis is raised after
`enter_looks` consecutive looks with confidence >= 0.5 and cleared after `leave_looks` consecutive
looks below it, so the status topic does not flap. Blur must also have lasted `blurred_after_s`: while
cars pass, an encoder smooths the static parts of a view for a few seconds, which a camera looked at
every few seconds (a stream, `demo --source`) would otherwise report as a blurred lens once a minute.

How fog, haze and heavy rain are told from tampering (docs/diagnose.md):
- a cover makes part of the view lose *all* texture and its structure stops matching the reference
  block by block; fog lowers contrast everywhere but the remaining edges stay where they were
  (block correlation of the contrast-normalised structure stays high), the view gets brighter and
  greyer, and the near blocks keep their texture;
- blur lowers the fine / medium band-energy ratio; fog and rain scale both bands alike (or add fine
  streaks), so the ratio stays or rises;
- a turned view moves or replaces the structure; fog leaves it in place.
Low contrast with aligned structure is reported as the informational diagnosis `fog`, which keeps
the camera online.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from hazardwatch.edge.config import DiagnoseConfig
from hazardwatch.edge.diagnose.diagnosis import ALL, DEGRADED, INFO, Diagnosis
from hazardwatch.edge.diagnose.features import (
    STRUCT_SIZE,
    FrameFeatures,
    align,
    analyse,
    block_correlation,
    hanning,
    shifted_correlation,
)
from hazardwatch.edge.diagnose.view_reference import ViewReference

log = logging.getLogger(__name__)

TEXTURE_FLOOR = 0.25  # medium-band energy (grey levels) below which a block is flat in any view
BLIND_TEXTURE = 0.3  # a block keeping less than this share of its normalised texture...
BLIND_CORRELATION = 0.3  # ...and matching its reference structure less than this is blind
MIN_TEXTURED_BLOCKS = 4
TOO_DARK = 20.0  # mean grey below which reference comparisons are not trusted (non-IR night)


def _above(x: float, threshold: float, width: float) -> float:
    """Confidence that x exceeds threshold: 0.5 at the threshold, 1 at threshold + width."""
    return float(min(1.0, max(0.0, 0.5 + (x - threshold) / (2 * width))))


def _below(x: float, threshold: float, width: float) -> float:
    return _above(-x, -threshold, width)


@dataclass
class _Track:
    """Hysteresis of one diagnosis."""

    hits: int = 0
    misses: int = 0
    active: bool = False
    confidence: float = 0.0
    since: float = 0.0
    run_since: float | None = None  # first hit of the current run (ended by leave_looks misses)


class CameraDiagnoser:
    """Diagnose one camera from the frames it is looked at with; call observe() once per look.

    Not thread-safe by design: the engine calls it for one camera from one visit at a time. The
    `current` result is immutable and may be read from any thread.
    """

    def __init__(self, cfg: DiagnoseConfig, streaming: bool = False) -> None:
        """`streaming`: frames come from a stream kept open (a repeated frame means a stuck stream at once)."""
        self.cfg = cfg
        self._frozen_after_s = 0.0 if streaming else cfg.frozen_after_s
        self._same_since: float | None = None
        self._prev_at: float | None = None
        self._last_bcorr: np.ndarray | None = None
        self._prev_blind: np.ndarray | None = None
        self._refs: dict[str, ViewReference] = {}
        self._tracks = {name: _Track() for name in ALL}
        self._prev_thumb: np.ndarray | None = None
        self._last_at: float | None = None
        self._window = hanning()
        self.looks = 0
        # Bumped whenever a new view becomes the reference: what the hazard models learnt of the old
        # view (edge/reference/) no longer holds either.
        self.view = 0
        self.current = Diagnosis()

    def observe(self, image: np.ndarray, at: float) -> Diagnosis:
        """Diagnose one look's frame taken at `at` (Unix s); the same frame twice counts once."""
        if self._last_at is not None and at == self._last_at:
            return self.current  # a persistent reader handed out the frame it already gave
        self._last_at = at
        self.looks += 1
        started = time.thread_time()
        f = analyse(image)
        self._last_bcorr = None
        raw, mode, corr0 = self._raw(f)
        if raw["frozen"] >= 0.5:
            self._same_since = self._same_since if self._same_since is not None else self._prev_at
            if self._same_since is not None and at - self._same_since < self._frozen_after_s:
                raw["frozen"] = 0.0  # the same picture, but not yet for long enough
        else:
            self._same_since = None
        self._prev_at = at
        active, info = self._hysteresis(raw, at)
        healthy = not active and max(raw[n] for n in DEGRADED) < 0.3 and raw["fog"] < 0.5
        ref = self._refs.get(mode) if mode else None
        if mode is None:
            pass  # between day and IR: learn nothing
        elif ref is None:
            if healthy:
                self._refs[mode] = ViewReference.first(f)
        elif healthy:
            ref.update(f, self.cfg.reference_rate, corr0 if ref.looks >= 2 else None, self._last_bcorr)
        shifted = self._tracks["view_shifted"]
        if mode and shifted.active and at - shifted.since >= self.cfg.adopt_view_after_s:
            log.warning("view shifted for %.0f s: adopting the new view as the reference", at - shifted.since)
            self._refs[mode] = ViewReference.first(f)
            self._tracks["view_shifted"] = _Track()
            active.pop("view_shifted", None)
            self.view += 1
        self.current = Diagnosis(
            active=active, info=info, raw=raw, looks=self.looks, cpu_s=time.thread_time() - started
        )
        return self.current

    # -- one look ---------------------------------------------------------------------------------
    def _raw(self, f: FrameFeatures) -> tuple[dict[str, float], str | None, float | None]:
        """This look's confidence per diagnosis, the reference mode (None while switching), the alignment."""
        cfg = self.cfg
        raw = dict.fromkeys(ALL, 0.0)
        if self._prev_thumb is not None:
            diff = float(np.mean(np.abs(f.thumb.astype(np.int16) - self._prev_thumb)))
            raw["frozen"] = _below(diff, cfg.frozen_diff, max(cfg.frozen_diff / 2, 1e-3))
        self._prev_thumb = f.thumb.astype(np.int16)
        raw["black"] = _below(f.p99, cfg.black_p99, 8.0)
        # Clipped highlights over most of the view, or a washed-out bright view with many clipped.
        raw["overexposed"] = max(
            _above(f.bright_frac, cfg.overexposed_share, 0.1),
            min(_above(f.mean, 200.0, 15.0), _above(f.bright_frac, cfg.overexposed_share / 2, 0.1)),
        )
        if raw["black"] < 0.5 and raw["overexposed"] < 0.5:
            raw["blank"] = _below(f.std, cfg.blank_std, 1.0)
        # Schmitt trigger on colourfulness: a camera near the threshold does not flip modes each look.
        night_now = self._tracks["night_ir"].active
        limit = cfg.night_saturation * (2.0 if night_now else 1.0)
        grey_blocks = float(f.block_saturation.max())
        raw["night_ir"] = min(_below(f.saturation, limit, 1.0), _below(grey_blocks, 3 * limit, 2.0))
        mode = "ir" if night_now else "day"
        if max(raw["black"], raw["overexposed"]) >= 0.5:
            raw["frozen"] = 0.0  # one reason is enough: a black "no video" screen is also unchanging
            return raw, mode, None
        ref = self._refs.get(mode)
        switching = (raw["night_ir"] >= 0.5) != night_now  # day/IR switch under way: no comparisons
        if switching:
            return self._entering_ir(raw, f, night_now)
        if ref is None or ref.looks < cfg.warmup_looks or (mode == "day" and self._too_dark(f, ref)):
            if raw["blank"] >= 0.5:
                raw["frozen"] = 0.0
            return raw, mode, None
        view_corr = self._compare(raw, f, ref)
        return raw, mode, view_corr

    def _entering_ir(
        self, raw: dict[str, float], f: FrameFeatures, night_now: bool
    ) -> tuple[dict[str, float], str | None, float | None]:
        """A board or a hand over the lens also takes the colour away: before a day camera is taken to
        have switched to IR (and learns a fresh IR reference, which would be the cover), judge the
        look against the day reference. Covered: stay in day mode and say so."""
        day = self._refs.get("day")
        if night_now or day is None or day.looks < self.cfg.warmup_looks or self._too_dark(f, day):
            return raw, None, None
        probe = dict(raw)
        view_corr = self._compare(probe, f, day)
        if probe["covered"] < 0.5:
            return raw, None, None
        probe["night_ir"] = 0.0
        return probe, "day", view_corr

    @staticmethod
    def _too_dark(f: FrameFeatures, ref: ViewReference) -> bool:
        """Too dark to compare (a non-IR camera at night), unless part of the view is as bright as usual:
        then the darkness sits in front of the lens."""
        if f.mean >= TOO_DARK:
            return False
        lit = f.block_mean >= np.maximum(0.6 * ref.block_mean, TOO_DARK)
        return not bool(lit.any())

    def _compare(self, raw: dict[str, float], f: FrameFeatures, ref: ViewReference) -> float | None:
        """Reference comparisons of one look (covered, blurred, view shifted, fog); fills `raw` in place
        and returns the view's alignment."""
        cfg = self.cfg

        # Textured: clearly above this view's typical block (so a sky is not), and above noise.
        textured = ref.block_texture > max(TEXTURE_FLOOR, 0.6 * float(np.median(ref.block_texture)))
        if ref.block_corr is not None:  # blocks of mere noise (bare asphalt, sky) are no evidence
            textured &= ref.block_corr >= 0.4
        n_textured = int(textured.sum())
        bcorr = block_correlation(ref.structure, f.structure)
        # Texture relative to brightness, so dusk (both fall) is not mistaken for a cover.
        norm_now = f.block_texture / (f.block_mean + 10.0)
        norm_ref = ref.block_texture / (ref.block_mean + 10.0)
        tex_ratio = norm_now / np.maximum(norm_ref, 1e-6)
        blind = textured & (tex_ratio < BLIND_TEXTURE) & (bcorr < BLIND_CORRELATION)
        # A board or a hand at the lens is dark as well as flat. Sensor noise over a dark block keeps its
        # texture *relative to brightness*, so judge those blocks by absolute texture; dusk darkens the
        # whole view slowly (the reference follows), a cover darkens part of it at once.
        dark_flat = (
            textured
            & (f.block_mean < 0.35 * ref.block_mean)
            & (f.block_texture < BLIND_TEXTURE * ref.block_texture)
            & (bcorr < BLIND_CORRELATION)
        )
        # A block the edge of a cover runs through is half blind: count it half.
        half = textured & ~blind & ~dark_flat & (tex_ratio < 2 * BLIND_TEXTURE) & (bcorr < 2 * BLIND_CORRELATION)
        # A cover stays put; a passing vehicle's blank roof does not: count bright blank blocks only when
        # they were blank at the last look too. Dark flat blocks count at once (no vehicle is black and flat
        # across the view), so a board is reported after `enter_looks` looks, not one more.
        was = self._prev_blind if self._prev_blind is not None else np.ones_like(blind)
        self._prev_blind = blind | half | dark_flat
        blind_here = blind | dark_flat
        blind, half = (blind & was) | dark_flat, half & was
        corr0, dx, dy, response = align(ref.structure, f.structure, self._window)
        enough = n_textured >= MIN_TEXTURED_BLOCKS
        if enough:  # the median block: a large object entering part of the view does not move it
            sharp_rel = float(np.median(f.block_sharpness[textured] / np.maximum(ref.block_sharpness[textured], 1e-6)))
        else:
            sharp_rel = f.sharpness / max(ref.sharpness, 1e-6)
        contrast = float(np.median(tex_ratio[textured])) if enough else 1.0
        most_detail = float(np.percentile(tex_ratio[textured], 75)) if enough else 1.0
        # Defocus lowers the fine / medium band ratio. Heavy defocus leaves only noise in the fine
        # band, so a second cue: detail gone everywhere while block brightness stayed (fog and dusk
        # change block brightness, a cover changes it where it sits; blur only spreads it).
        moved_means = float(np.median(np.abs(f.block_mean - ref.block_mean) / (ref.block_mean + 10.0)))
        smeared = min(_below(most_detail, 0.45, 0.1), _below(moved_means, 0.1, 0.05)) if enough else 0.0
        view_corr = corr0
        if enough:
            share = (float(blind.sum()) + 0.5 * float(half.sum())) / n_textured
            covered = _above(share, cfg.covered_share, 0.08)
            if blind.any() and covered >= 0.5 and self._fog_like(f, ref, blind, textured, tex_ratio):
                covered *= 0.3
            raw["covered"] = covered if smeared < 0.5 else 0.0
            # Alignment from the most structured blocks still seen: the median ignores a passing
            # truck, and the blind blocks are the cover's business.
            strong = textured & (ref.block_texture >= np.median(ref.block_texture[textured])) & ~blind_here
            if strong.any():
                view_corr = float(np.median(bcorr[strong]))
        if raw["covered"] < 0.5:
            # The fine band itself must have faded: a large sharp object entering lowers the ratio by
            # adding medium-band edges, defocus by removing fine detail.
            fine_now = f.block_fine / (f.block_mean + 10.0)
            fine_ref = ref.block_fine / (ref.block_mean + 10.0)
            sel = textured if enough else np.ones_like(textured)
            fine_kept = float(np.median(fine_now[sel] / np.maximum(fine_ref[sel], 1e-6)))
            ratio_fell = min(_below(sharp_rel, cfg.blurred_ratio, 0.1), _below(fine_kept, 0.8, 0.1))
            raw["blurred"] = max(ratio_fell, smeared)

        usual = ref.usual_corr if ref.usual_corr is not None else 0.95
        if raw["covered"] < 0.5:
            moved = float(np.hypot(dx, dy)) / STRUCT_SIZE[0]
            translated = 0.0
            if response >= 0.15 and shifted_correlation(ref.structure, f.structure, dx, dy) > corr0 + 0.05:
                translated = _above(moved, cfg.shift_share, cfg.shift_share / 3)
            mismatch = _above(1.0 - view_corr / usual, 1.0 - cfg.mismatch, 0.15)
            raw["view_shifted"] = max(translated, mismatch)

        if enough and sharp_rel > 0.85 and view_corr >= 0.7 * usual and f.mean >= ref.mean - 10:
            raw["fog"] = _below(contrast, 0.6, 0.15)
        if raw["blank"] >= 0.5:
            if view_corr >= 0.6 * usual and f.mean >= ref.mean - 10:
                raw["blank"] = 0.0  # nearly uniform, but the scene is still there, faint: fog, not a blank
            else:
                for name in ("covered", "blurred", "view_shifted", "frozen", "fog"):
                    raw[name] = 0.0
        self._last_bcorr = bcorr
        return view_corr

    @staticmethod
    def _fog_like(
        f: FrameFeatures, ref: ViewReference, blind: np.ndarray, textured: np.ndarray, tex_ratio: np.ndarray
    ) -> bool:
        """Blank blocks that got brighter and greyer while the rest of the view lost contrast too."""
        brighter = float(np.mean(f.block_mean[blind] - ref.block_mean[blind])) > -5.0
        greyer = float(np.mean(f.block_saturation[blind])) <= 0.6 * float(np.mean(ref.block_saturation[blind])) + 2.0
        rest = textured & ~blind
        rest_faded = not rest.any() or float(np.median(tex_ratio[rest])) < 0.7
        return brighter and greyer and rest_faded

    def _hysteresis(self, raw: dict[str, float], at: float) -> tuple[dict[str, float], dict[str, float]]:
        enter, leave = self.cfg.enter_looks, self.cfg.leave_looks
        last_for = {"blurred": self.cfg.blurred_after_s}  # how long a run must also have lasted
        active: dict[str, float] = {}
        info: dict[str, float] = {}
        for name, track in self._tracks.items():
            conf = raw[name]
            if conf >= 0.5:
                track.hits += 1
                track.misses = 0
                if track.run_since is None:
                    track.run_since = at
                track.confidence = conf if track.hits == 1 else 0.5 * track.confidence + 0.5 * conf
                lasted = at - track.run_since >= last_for.get(name, 0.0)
                if not track.active and track.hits >= enter and lasted:
                    track.active, track.since = True, at
            else:
                track.misses += 1
                track.hits = 0
                if track.misses >= leave:  # the run ends, and with it the diagnosis
                    track.run_since = None
                    if track.active:
                        track.active = False
                        track.confidence = 0.0
            if track.active:
                (info if name in INFO else active)[name] = track.confidence
        return active, info
