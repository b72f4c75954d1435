"""Every camera's learnt normal, per hazard and light mode; network-free and file-free.

The predictor asks the bank for a camera's reference before a look and tells it about quiet looks
after; the engine persists the bank (edge/reference/store.py). A reference belongs to one model
(its embedding means nothing to another) and one view: when the diagnosis adopts a new view after a
re-aim, or a rollout changes the model, the camera starts learning again and runs cold meanwhile.
View numbers are the diagnoser's, counted from 0 again by every process: references loaded from disk
belong to whatever view the camera shows at its first look after the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from hazardwatch.contract import Hazard
from hazardwatch.edge.detect.detector import ReferenceInput
from hazardwatch.edge.reference.cells import CellReference

MODES = ("day", "ir")
PART_SEP = "#"  # never in a camera id (contract Id: letters, digits, _ . -)
MAX_PARTS = 8  # zoom crops a camera may have (manifest reference.zoom.crops)


def part_id(camera_id: str, k: int) -> str:
    """The reference key of a camera's k-th zoom crop (edge/detect/zoom.py): a part learns like a camera."""
    return f"{camera_id}{PART_SEP}zoom{k}"


def _belongs(key: str, camera_id: str) -> bool:
    """The camera's own key or one of its parts'."""
    return key == camera_id or key.startswith(camera_id + PART_SEP)


@dataclass(frozen=True)
class ReferencePolicy:
    """How a reference learns (edge config `reference`; see ReferenceConfig for the meaning)."""

    min_looks: int = 16
    min_interval_s: float = 120.0
    horizon_looks: int = 500
    settle_looks: int = 2
    warmup: bool = True
    warming_learn_share: float = 0.5

    @property
    def settle_s(self) -> float:
        """How long a quiet look waits before it is learnt: the camera must stay quiet that long after it."""
        return self.settle_looks * self.min_interval_s


@dataclass(frozen=True)
class _Waiting:
    """A quiet look not learnt yet (float16: waiting looks cost half a reference mode's float32 each)."""

    at: float
    mode: str
    emb: np.ndarray


@dataclass
class CameraReferences:
    """One camera's references for one hazard: one per light mode, all of one model and one view."""

    model_key: str
    view: int
    modes: dict[str, CellReference] = field(default_factory=dict)
    first_looks: int | None = None  # the model's first warm-up step, as the predictor last asked with it

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.modes.values())


@dataclass(frozen=True)
class ReferenceState:
    """What /api/cameras and the metrics show of one reference."""

    hazard: Hazard
    mode: str
    looks: int
    ready: bool
    absorbed: int
    age_s: float
    bytes: int
    waiting: int = 0  # quiet looks taken, learnt once the camera has stayed quiet after them
    in_use: bool = False  # looks are compared with it (ready, or warming at a stricter threshold)
    part: str = ""  # "": the whole view; "zoom0", "zoom1"...: a crop of its horizon band


class ReferenceBank:
    def __init__(self, policy: ReferencePolicy | None = None) -> None:
        self.policy = policy or ReferencePolicy()
        self._refs: dict[tuple[str, Hazard], CameraReferences] = {}
        self._views: dict[str, int] = {}
        self._waiting: dict[tuple[str, Hazard], list[_Waiting]] = {}

    def _entry(self, camera_id: str, hazard: Hazard, model_key: str, view: int) -> CameraReferences:
        known = self._views.get(camera_id)
        if known is None:  # first look since the start: what was loaded is of the view seen now
            for (cam, _), loaded in self._refs.items():
                if cam == camera_id:
                    loaded.view = view
        elif known != view:  # the camera was re-aimed: nothing it learnt holds
            self.reset(camera_id)
        self._views[camera_id] = view
        entry = self._refs.get((camera_id, hazard))
        if entry is None or entry.model_key != model_key or entry.view != view:
            entry = self._refs[(camera_id, hazard)] = CameraReferences(model_key, view)
            self._waiting.pop((camera_id, hazard), None)  # looks of another model or view
        return entry

    def reference(
        self, camera_id: str, hazard: Hazard, mode: str, model_key: str, view: int, first_looks: int | None = None
    ) -> ReferenceInput | None:
        """The model's reference input for this look, or None while the camera still runs cold. A reference
        is used once ready, or while still learning once it holds `first_looks` looks (the model's first
        warm-up step; the model then judges the look at that step's stricter threshold)."""
        entry = self._entry(camera_id, hazard, model_key, view)
        entry.first_looks = first_looks
        ref = entry.modes.get(mode)
        if ref is None or not self._in_use(ref, first_looks):
            return None
        return ReferenceInput(ref.stats(self.policy.min_looks), ref.looks)

    def _in_use(self, ref: CellReference, first_looks: int | None) -> bool:
        warming = self.policy.warmup and first_looks is not None and ref.looks >= first_looks
        return ref.is_ready(self.policy.min_looks) or warming

    def learn(
        self, camera_id: str, hazard: Hazard, mode: str, model_key: str, view: int, emb: np.ndarray, at: float
    ) -> bool:
        """Take a quiet look to be learnt once the camera has stayed quiet for `settle_s` after it (a plume
        still too faint to flag must not become the normal it is then compared with; `unsettle` drops the
        waiting looks). Looks closer than min_interval_s to the last one taken are skipped."""
        entry = self._entry(camera_id, hazard, model_key, view)
        ref = entry.modes.get(mode)
        if ref is None or ref.shape != emb.shape:
            ref = entry.modes[mode] = CellReference.empty(emb.shape, at)
            self._waiting.pop((camera_id, hazard), None)
        if self.policy.settle_s <= 0:  # learnt at once
            if ref.since_last_learnt(at) < self.policy.min_interval_s:
                return False
            ref.learn(emb, at, self.policy.min_looks, self.policy.horizon_looks)
            return True
        waiting = self._waiting.setdefault((camera_id, hazard), [])
        last = max((w.at for w in waiting if w.mode == mode), default=None)
        since = ref.since_last_learnt(at) if last is None else at - last
        taken = since >= self.policy.min_interval_s
        if taken:
            waiting.append(_Waiting(at, mode, emb.astype(np.float16)))
        self._settle(camera_id, hazard, at)
        return taken

    def unsettle(self, camera_id: str, hazard: Hazard) -> int:
        """A look that was not quiet: the looks still waiting may hold its beginning; none is learnt."""
        return len(self._waiting.pop((camera_id, hazard), []))

    def settle(self, now: float) -> None:
        """Learn every waiting look the camera has stayed quiet after for `settle_s` (time passing alone
        settles them too: a camera looked at rarely, or a replay that idles)."""
        for camera_id, hazard in list(self._waiting):
            self._settle(camera_id, hazard, now)

    def _settle(self, camera_id: str, hazard: Hazard, now: float) -> None:
        waiting = self._waiting.get((camera_id, hazard))
        entry = self._refs.get((camera_id, hazard))
        if not waiting or entry is None:
            return
        while waiting and now - waiting[0].at >= self.policy.settle_s:
            look = waiting.pop(0)
            ref = entry.modes.get(look.mode)
            if ref is not None and ref.shape == look.emb.shape:
                ref.learn(look.emb.astype(np.float32), look.at, self.policy.min_looks, self.policy.horizon_looks)

    def absorb(
        self,
        camera_id: str,
        hazard: Hazard,
        mode: str,
        model_key: str,
        view: int,
        emb: np.ndarray,
        cells: np.ndarray,
        at: float,
    ) -> None:
        """An operator's false alarm: these cells of this embedding are this camera's normal."""
        entry = self._entry(camera_id, hazard, model_key, view)
        ref = entry.modes.get(mode)
        if ref is None or ref.shape != emb.shape:
            ref = entry.modes[mode] = CellReference.empty(emb.shape, at)
        ref.absorb(emb, cells, at, self.policy.min_looks)

    def reset(self, camera_id: str, hazard: Hazard | None = None) -> None:
        """Forget what the camera (and each of its zoom crops) learnt."""
        for key in [k for k in self._refs if _belongs(k[0], camera_id) and (hazard is None or k[1] == hazard)]:
            del self._refs[key]
            self._waiting.pop(key, None)

    def states(self, camera_id: str, now: float) -> list[ReferenceState]:
        """The camera's references, its whole view's first, then its zoom crops' (`part`)."""
        out = []
        for (cam, hazard), entry in sorted(list(self._refs.items())):
            if not _belongs(cam, camera_id):
                continue
            for mode, ref in sorted(entry.modes.items()):
                out.append(
                    ReferenceState(
                        hazard=hazard,
                        mode=mode,
                        looks=ref.looks,
                        ready=ref.is_ready(self.policy.min_looks),
                        absorbed=ref.absorbed,
                        age_s=round(max(0.0, now - ref.created_at), 1),
                        bytes=ref.nbytes,
                        waiting=sum(w.mode == mode for w in self._waiting.get((cam, hazard), [])),
                        in_use=self._in_use(ref, entry.first_looks),
                        part=cam[len(camera_id) + len(PART_SEP) :] if cam != camera_id else "",
                    )
                )
        return out

    def nbytes(self, camera_id: str | None = None) -> int:
        """References and the looks waiting to be learnt (a camera's zoom crops' included)."""
        refs = sum(
            e.nbytes for (cam, _), e in list(self._refs.items()) if camera_id is None or _belongs(cam, camera_id)
        )
        waiting = sum(
            w.emb.nbytes
            for (cam, _), ws in list(self._waiting.items())
            for w in ws
            if camera_id is None or _belongs(cam, camera_id)
        )
        return refs + waiting

    # -- persistence hooks (edge/reference/store.py does the I/O) ----------------------------------
    def entries(self) -> Iterator[tuple[str, Hazard, CameraReferences]]:
        for (cam, hazard), entry in self._refs.items():
            yield cam, hazard, entry

    def put(self, camera_id: str, hazard: Hazard, entry: CameraReferences) -> None:
        """A loaded entry; its camera's first look adopts it for the view the diagnoser then counts."""
        self._refs[(camera_id, hazard)] = entry
