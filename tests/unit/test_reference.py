"""The per-camera reference: statistics, life cycle (learn, ready, view shift, light modes, false alarm)
and persistence across restarts, on arrays; tests/integration/test_reference_model.py runs it on real
frames through the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.disk import small_tmpfs

from hazardwatch.contract import Hazard
from hazardwatch.edge.detect import Detection
from hazardwatch.edge.reference import (
    CellReference,
    ReferenceBank,
    ReferencePolicy,
    boxes_to_cells,
    embedding_mask,
)
from hazardwatch.edge.reference.store import ReferenceStore
from hazardwatch.manifest import ReferenceSpec

pytestmark = pytest.mark.quick

SHAPE = (8, 3, 4)
SMOKE = Hazard.SMOKE


def _looks(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 0.5, (n, *SHAPE)).astype(np.float32)


def test_exact_phase_matches_numpy_mean_std_and_max() -> None:
    looks = _looks(16)
    ref = CellReference.empty(SHAPE, 0.0)
    for k, e in enumerate(looks):
        ref.learn(e, float(k), min_looks=16, horizon_looks=100)
    assert ref.is_ready(16) and ref.ready_at == 15.0
    stats = ref.stats(16)
    np.testing.assert_allclose(stats[:8], looks.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats[8:16], looks.std(0, ddof=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats[16:], looks.max(0))


def test_after_ready_it_follows_slow_change_and_the_max_relaxes() -> None:
    ref = CellReference.empty(SHAPE, 0.0)
    for k, e in enumerate(_looks(16)):
        ref.learn(e, float(k), 16, horizon_looks=50)
    old_max = ref.stats(16)[16:].copy()
    for k in range(300):  # the scene darkens for good: the reference follows within a few horizons
        ref.learn(np.full(SHAPE, -2.0, np.float32), 100.0 + k, 16, horizon_looks=50)
    stats = ref.stats(16)
    assert np.all(np.abs(stats[:8] + 2.0) < 0.05)
    assert np.all(stats[16:] < old_max - 1.0)  # the old bright maximum no longer excuses anything


def test_absorb_widens_only_the_taught_cells() -> None:
    ref = CellReference.empty(SHAPE, 0.0)
    for k, e in enumerate(_looks(16)):
        ref.learn(e, float(k), 16, 100)
    before = ref.stats(16)
    odd = np.full(SHAPE, 9.0, np.float32)
    cells = np.zeros(SHAPE[1:], bool)
    cells[1, 2] = True
    ref.absorb(odd, cells, 20.0, 16)
    after = ref.stats(16)
    assert ref.absorbed == 1
    assert np.all(after[16:, 1, 2] == 9.0)  # max now covers the false alarm
    assert np.all(after[8:16, 1, 2] > before[8:16, 1, 2])  # and the spread widened there
    untouched = ~cells
    np.testing.assert_array_equal(after[:, untouched], before[:, untouched])


def test_embedding_mask_covers_the_box_at_every_scale() -> None:
    mask = embedding_mask([Detection(0.0, 0.0, 0.5, 0.5, 0.9)], [(2, (2, 2)), (1, (4, 4))])
    coarse, fine = mask[:8].reshape(2, 2, 2), mask[8:].reshape(4, 4)
    assert coarse[:, 0, 0].all() and coarse.sum() == 2
    assert fine[:2, :2].all() and fine.sum() == 4


def test_boxes_to_cells_covers_every_overlapped_cell() -> None:
    cells = boxes_to_cells([Detection(0.26, 0.0, 0.5, 0.34, 0.9)], (3, 4))
    assert cells.tolist() == [[False, True, False, False], [False, True, False, False], [False] * 4]
    tiny = boxes_to_cells([Detection(0.9, 0.9, 0.9, 0.9, 0.9)], (3, 4))
    assert tiny.sum() == 1 and tiny[2, 3]


def _bank(min_looks: int = 4, interval: float = 10.0, settle_looks: int = 0) -> ReferenceBank:
    """A bank that learns a quiet look at once unless `settle_looks` says otherwise."""
    policy = ReferencePolicy(min_looks=min_looks, min_interval_s=interval, horizon_looks=100, settle_looks=settle_looks)
    return ReferenceBank(policy)


def _teach(
    bank: ReferenceBank, cam: str, mode: str, n: int, *, view: int = 0, key: str = "m@1", t0: float = 0.0
) -> None:
    for k, e in enumerate(_looks(n, seed=sum(map(ord, cam + mode)))):
        bank.learn(cam, SMOKE, mode, key, view, e, t0 + 10.0 * k)


def test_cold_until_min_looks_and_looks_too_close_are_skipped() -> None:
    bank = _bank(min_looks=4, interval=10.0)
    e = _looks(1)[0]
    assert bank.learn("c1", SMOKE, "day", "m@1", 0, e, 0.0)
    assert not bank.learn("c1", SMOKE, "day", "m@1", 0, e, 5.0)  # 5 s later: same moment, not learnt
    for t in (10.0, 20.0):
        bank.learn("c1", SMOKE, "day", "m@1", 0, e, t)
    assert bank.reference("c1", SMOKE, "day", "m@1", 0) is None  # 3 looks: still cold
    bank.learn("c1", SMOKE, "day", "m@1", 0, e, 30.0)
    ref = bank.reference("c1", SMOKE, "day", "m@1", 0)
    assert ref is not None and ref.stats.shape == (24, 3, 4) and ref.looks == 4


def test_a_warming_reference_is_used_from_the_models_first_step() -> None:
    """Before min_looks, a reference is handed out once it holds the model's first warm-up step of looks
    (with its look count, so the model can judge at that step's threshold), unless the policy says no."""
    bank = _bank(min_looks=16, interval=10.0)
    _teach(bank, "c1", "day", 3)
    assert bank.reference("c1", SMOKE, "day", "m@1", 0, first_looks=4) is None  # 3 looks: cold
    (state,) = bank.states("c1", now=100.0)
    assert not state.in_use and not state.ready
    _teach(bank, "c1", "day", 5, t0=1000.0)
    assert bank.reference("c1", SMOKE, "day", "m@1", 0) is None  # a model without warm-up steps waits for 16
    ref = bank.reference("c1", SMOKE, "day", "m@1", 0, first_looks=4)
    assert ref is not None and ref.looks == 8
    (state,) = bank.states("c1", now=2000.0)
    assert state.in_use and not state.ready
    strict = ReferenceBank(ReferencePolicy(min_looks=16, min_interval_s=10.0, settle_looks=0, warmup=False))
    _teach(strict, "c1", "day", 8)
    assert strict.reference("c1", SMOKE, "day", "m@1", 0, first_looks=4) is None  # warm-up off in the config


def test_day_and_ir_modes_learn_apart() -> None:
    bank = _bank()
    _teach(bank, "c1", "day", 4)
    assert bank.reference("c1", SMOKE, "day", "m@1", 0) is not None
    assert bank.reference("c1", SMOKE, "ir", "m@1", 0) is None  # night starts cold
    _teach(bank, "c1", "ir", 4, t0=1000.0)
    day, ir = bank.reference("c1", SMOKE, "day", "m@1", 0), bank.reference("c1", SMOKE, "ir", "m@1", 0)
    assert day is not None and ir is not None and not np.array_equal(day.stats, ir.stats)
    states = {s.mode: s for s in bank.states("c1", now=2000.0)}
    assert states["day"].ready and states["ir"].looks == 4 and states["day"].bytes == 3 * 4 * 8 * 3 * 4


def test_a_new_view_or_a_new_model_starts_again() -> None:
    bank = _bank()
    _teach(bank, "c1", "day", 4)
    _teach(bank, "c2", "day", 4)
    assert bank.reference("c1", SMOKE, "day", "m@2", 0) is None  # another model: its embedding differs
    _teach(bank, "c1", "day", 4)
    assert bank.reference("c1", SMOKE, "day", "m@1", 1) is None  # the diagnosis adopted a re-aimed view
    assert bank.nbytes("c1") == 0
    assert bank.reference("c2", SMOKE, "day", "m@1", 0) is not None  # other cameras keep theirs


def test_memory_per_camera_is_bounded_for_the_shipped_smoke_embedding() -> None:
    bank = _bank(min_looks=2, interval=0.0)
    emb = np.ones(32 * 15 * 20 + 16 * 30 * 40, np.float32)  # smoke: stride 32 and stride 16 cells, flattened
    for mode in ("day", "ir"):
        for t in range(50):
            bank.learn("c1", SMOKE, mode, "m@1", 0, emb, float(t))
    assert bank.nbytes("c1") <= 1 << 20  # the budget: 1 MiB per camera


def test_store_round_trip_and_restart(tmp_path: Path) -> None:
    bank = _bank()
    _teach(bank, "c1", "day", 5)
    _teach(bank, "..", "ir", 4)  # an id that must not become a path
    cells = np.zeros(SHAPE[1:], bool)
    cells[0, 0] = True
    bank.absorb("c1", SMOKE, "day", "m@1", 0, np.full(SHAPE, 5.0, np.float32), cells, 99.0)
    store = ReferenceStore(tmp_path / "refs")
    assert store.save(bank) == 2
    assert {p.suffix for p in (tmp_path / "refs").iterdir()} == {".npz"}

    again = _bank()
    assert store.load(again, {"c1", "..", "c3"}) == []
    for cam, mode in (("c1", "day"), ("..", "ir")):
        loaded, kept = again.reference(cam, SMOKE, mode, "m@1", 0), bank.reference(cam, SMOKE, mode, "m@1", 0)
        assert loaded is not None and kept is not None and loaded.looks == kept.looks
        np.testing.assert_array_equal(loaded.stats, kept.stats)
    (state,) = again.states("c1", now=100.0)
    assert state.looks == 5 and state.absorbed == 1


def test_a_restart_keeps_what_a_re_aimed_camera_learnt(tmp_path: Path) -> None:
    """The diagnoser counts views from 0 in every process: a camera that adopted view 2 before the restart
    looks with view 0 after it, and must keep its references."""
    bank = _bank()
    _teach(bank, "c1", "day", 4, view=2)
    store = ReferenceStore(tmp_path)
    store.save(bank)
    again = _bank()
    assert store.load(again, {"c1"}) == []
    want, got = bank.reference("c1", SMOKE, "day", "m@1", 2), again.reference("c1", SMOKE, "day", "m@1", 0)
    assert want is not None and got is not None
    np.testing.assert_array_equal(got.stats, want.stats)
    assert again.reference("c1", SMOKE, "day", "m@1", 1) is None  # a re-aim after the restart still resets


def test_a_damaged_file_is_set_aside_and_the_camera_learns_again(tmp_path: Path) -> None:
    bank = _bank()
    _teach(bank, "c1", "day", 4)
    store = ReferenceStore(tmp_path)
    store.save(bank)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(path.read_bytes()[:200])  # a power cut mid-copy
    again = _bank()
    (problem,) = store.load(again, {"c1"})
    assert "camera c1" in problem and "learns again" in problem
    assert again.reference("c1", SMOKE, "day", "m@1", 0) is None
    assert path.with_suffix(".bad").is_file() and not path.exists()


def test_a_save_writes_only_cameras_that_changed(tmp_path: Path) -> None:
    bank = _bank()
    _teach(bank, "c1", "day", 4)
    _teach(bank, "c2", "day", 4)
    store = ReferenceStore(tmp_path)
    assert store.save(bank) == 2
    assert store.save(bank) == 0  # nothing learnt since: no disk write
    bank.learn("c2", SMOKE, "day", "m@1", 0, _looks(1)[0], 10_000.0)
    assert store.save(bank) == 1
    again = _bank()
    assert store.load(again, {"c1", "c2"}) == []
    assert ReferenceStore(tmp_path).save(again) == 2 and store.save(again) == 0  # loaded = already on disk


def test_stats_follow_learning_and_absorbing() -> None:
    ref = CellReference.empty(SHAPE, 0.0)
    for k, e in enumerate(_looks(16)):
        ref.learn(e, float(k), 16, 100)
    first = ref.stats(16)
    np.testing.assert_array_equal(ref.stats(16), first)
    assert ref.stats(16) is not first  # computed per look: no cached copy doubling the reference's memory
    n = SHAPE[0]
    np.testing.assert_array_equal(first[:n], ref.mean)
    np.testing.assert_allclose(first[n : 2 * n], np.sqrt(ref.m2), rtol=1e-6)
    np.testing.assert_array_equal(first[2 * n :], ref.max)
    ref.learn(np.full(SHAPE, 50.0, np.float32), 100.0, 16, 100)
    assert not np.array_equal(ref.stats(16), first)


def test_a_save_on_a_full_disk_leaves_no_half_file(tmp_path: Path) -> None:
    """The edge logs the OSError and goes on; the half-written temporary file must not keep the space the
    outbox needs."""
    bank = _bank(min_looks=2, interval=0.0)
    emb = np.ones((64, 30, 40), np.float32)  # 3 x 300 KB: more than the disk holds
    for t in range(3):
        bank.learn("c1", SMOKE, "day", "m@1", 0, emb, float(t))
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        store = ReferenceStore(disk / "refs")
        with pytest.raises(OSError):
            store.save(bank)
        assert list((disk / "refs").iterdir()) == []


def test_a_quiet_look_is_learnt_only_once_the_camera_stayed_quiet_after_it() -> None:
    """settle_looks 2 at 10 s: a look is learnt 20 s later if nothing stirred meanwhile; a look that is not
    quiet drops the waiting ones (they may hold the start of a plume too faint to flag), and time passing
    alone settles them."""
    bank = _bank(min_looks=6, interval=10.0, settle_looks=2)
    looks = _looks(8)

    def learnt() -> int:
        states = bank.states("c1", now=0.0)
        return states[0].looks if states else 0

    for k in range(4):  # 0, 10, 20, 30 s: the looks at 0 and 10 s have settled
        assert bank.learn("c1", SMOKE, "day", "m@1", 0, looks[k], 10.0 * k)
    assert learnt() == 2 and bank.reference("c1", SMOKE, "day", "m@1", 0) is None
    assert bank.states("c1", now=30.0)[0].waiting == 2  # shown in /api/cameras
    per_look = looks[0].size * 2  # float16 while waiting
    assert bank.nbytes("c1") == 3 * looks[0].nbytes + 2 * per_look  # the 20 and 30 s looks wait
    assert bank.unsettle("c1", SMOKE) == 2  # a look at 35 s was not quiet
    bank.settle(1_000.0)
    assert learnt() == 2 and bank.nbytes("c1") == 3 * looks[0].nbytes
    for k in range(4, 8):  # 40-70 s quiet again; 40 and 50 s settle by 70 s, the rest an hour later
        bank.learn("c1", SMOKE, "day", "m@1", 0, looks[k], 10.0 * k)
    assert learnt() == 4
    bank.settle(3_600.0)
    assert learnt() == 6
    ref = bank.reference("c1", SMOKE, "day", "m@1", 0)
    assert ref is not None  # ready at 6 looks, all in the exact phase
    stats = ref.stats
    # what was learnt is the quiet looks (float16 while waiting), never the dropped ones
    kept = np.stack([looks[k] for k in (0, 1, 4, 5, 6, 7)])
    np.testing.assert_allclose(stats[: kept.shape[1]], kept.mean(0), rtol=2e-3, atol=2e-3)


def test_waiting_looks_go_with_a_new_view_or_model() -> None:
    bank = _bank(min_looks=2, interval=10.0, settle_looks=2)
    e = _looks(2)
    bank.learn("c1", SMOKE, "day", "m@1", 0, e[0], 0.0)
    bank.learn("c1", SMOKE, "day", "m@2", 0, e[1], 10.0)  # a rollout: the m@1 look must not reach m@2's reference
    bank.settle(1_000.0)
    (state,) = bank.states("c1", now=1_000.0)
    assert state.looks == 1


class _Scripted:
    """A reference-model plug-in whose looks are scripted: (score, region or None) per call."""

    name, version, hazard, threshold = "scripted", "1", SMOKE, 0.9
    reference = ReferenceSpec(scales=[{"dim": SHAPE[0], "grid": SHAPE[1:]}], grid=SHAPE[1:], threshold=0.3)

    def __init__(self, script: list[tuple[float, bool]]) -> None:
        self.script = list(script)
        self.rng = np.random.default_rng(0)

    def detect(self, frames, contexts=None):  # type: ignore[no-untyped-def]
        from hazardwatch.edge.detect import ImageResult

        score, region = self.script.pop(0)
        dets = [Detection(0.4, 0.4, 0.5, 0.5, score)] if region else []
        emb = self.rng.normal(1.0, 0.5, SHAPE).astype(np.float32).ravel()
        ref = contexts[0].reference
        threshold = None if ref is None else self.reference.threshold_for(ref.looks)
        return [ImageResult(score, dets, emb, ref is not None, threshold) for _ in frames]


def test_the_predictor_drops_waiting_looks_when_a_look_stirs() -> None:
    """Through the predictor: quiet looks wait two intervals; a look that scores over learn_below (no region
    yet: a faint plume) drops the ones waiting, so the minutes before it never reach the reference."""
    from hazardwatch.edge.config import CameraConfig, ConfirmConfig
    from hazardwatch.edge.predictor import LookRequest, Predictor

    cam = CameraConfig.model_validate({"id": "c1", "source": "rtsp://127.0.0.1/x", "hazards": {"smoke": {}}})
    bank = _bank(min_looks=4, interval=10.0, settle_looks=2)
    quiet, faint = (0.1, False), (0.85, False)  # 0.85 >= 0.9 x 0.9: not quiet, yet no region
    detector = _Scripted([quiet] * 4 + [faint] + [quiet] * 2)
    predictor = Predictor([cam], {SMOKE: detector}, {("c1", SMOKE): ConfirmConfig()}, bank)
    frame = np.zeros((8, 8, 3), np.uint8)
    for k in range(7):
        predictor.process([LookRequest("c1", frame, 10.0 * k, frozenset({SMOKE}))])
    # 0 and 10 s were learnt at 20 and 30 s; 20 and 30 s were waiting when the faint look came at 40 s
    predictor.expire(1_000.0)
    (state,) = bank.states("c1", now=1_000.0)
    assert state.looks == 4  # 0, 10, then 50 and 60 s (settled by time passing); never 20 or 30 s


class _ScriptedWarming(_Scripted):
    """The scripted model with a warm-up step: a reference of 4-15 looks judges at 0.88, a ready one at 0.26."""

    reference = ReferenceSpec(
        scales=[{"dim": SHAPE[0], "grid": SHAPE[1:]}],
        grid=SHAPE[1:],
        threshold=0.26,
        warmup=[{"looks": 4, "threshold": 0.88}],
    )


@pytest.mark.parametrize(("share", "learnt"), [(0.5, 5), (1.0, 8)])
def test_a_warming_reference_learns_only_under_a_bar_below_its_steps_threshold(share: float, learnt: int) -> None:
    """A look judged against a reference still warming up (step threshold 0.88, ready 0.26) that scores 0.6
    raises nothing at 0.88, but at the default share (bar 0.9 x (0.26 + 0.5 x 0.62) = 0.51) it is not learnt
    as normal: a fire's first minutes while a camera learns. Share 1 is the rule before it (bar 0.9 x 0.88),
    which learnt all three; a look at 0.3 is learnt either way."""
    from hazardwatch.edge.config import CameraConfig, ConfirmConfig
    from hazardwatch.edge.predictor import LookRequest, Predictor

    cam = CameraConfig.model_validate({"id": "c1", "source": "rtsp://127.0.0.1/x", "hazards": {"smoke": {}}})
    policy = ReferencePolicy(min_looks=16, min_interval_s=10.0, settle_looks=0, warming_learn_share=share)
    bank = ReferenceBank(policy)
    detector = _ScriptedWarming([(0.1, False)] * 4 + [(0.6, False)] * 3 + [(0.3, False)])
    predictor = Predictor([cam], {SMOKE: detector}, {("c1", SMOKE): ConfirmConfig()}, bank)
    frame = np.zeros((8, 8, 3), np.uint8)
    for k in range(8):
        predictor.process([LookRequest("c1", frame, 10.0 * k, frozenset({SMOKE}))])
    (state,) = bank.states("c1", now=100.0)
    assert state.in_use and state.looks == learnt


def test_the_edge_config_passes_the_warming_share_to_its_references(tmp_path: Path) -> None:
    from hazardwatch.edge.config import EdgeConfig
    from hazardwatch.edge.engine.wiring import build_references

    raw = {
        "edge_id": "e1",
        "cameras": [{"id": "c1", "source": "rtsp://127.0.0.1/x", "hazards": {"smoke": {}}}],
        "models": [{"manifest": str(tmp_path / "m.json")}],
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "reference": {"warming_learn_share": 0.25},
    }
    bank, _ = build_references(EdgeConfig.model_validate(raw), {"c1"})
    assert bank.policy.warming_learn_share == 0.25
    with pytest.raises(ValueError, match="warming_learn_share"):
        EdgeConfig.model_validate({**raw, "reference": {"warming_learn_share": 1.5}})


def test_a_manifest_gives_each_warm_up_step_its_threshold() -> None:
    spec = ReferenceSpec(
        scales=[{"dim": 8, "grid": (3, 4)}],
        grid=(3, 4),
        threshold=0.26,
        warmup=[{"looks": 4, "threshold": 0.88}, {"looks": 8, "threshold": 0.35}],
    )
    assert spec.first_looks == 4 and spec.looks == 16
    assert [spec.threshold_for(n) for n in (4, 7, 8, 15, 16, 500)] == [0.88, 0.88, 0.35, 0.35, 0.26, 0.26]
    assert spec.threshold_for(2) == 0.26  # an edge that calls 2 looks ready uses the model's own threshold
    assert ReferenceSpec(scales=[{"dim": 8, "grid": (3, 4)}], grid=(3, 4), threshold=0.26).first_looks is None
    for steps in ([8, 4], [4, 4], [4, 16]):
        with pytest.raises(ValueError, match=r"reference\.warmup: looks must be distinct, ascending and under looks"):
            ReferenceSpec(
                scales=[{"dim": 8, "grid": (3, 4)}],
                grid=(3, 4),
                threshold=0.26,
                warmup=[{"looks": n, "threshold": 0.5} for n in steps],
            )


def test_the_warming_layout_keeps_each_cameras_first_quiet_frames_only() -> None:
    from hazardwatch.models.train_reference import warming_layout

    lines = [f"cam{c}\treference\tr{c}{k}.jpg" for c in "ab" for k in range(5)]
    lines += ["cama\tpositives\tp.jpg", "camb\tnegatives\tn.jpg"]
    kept = warming_layout(lines, frames=2)
    assert kept == ["cama\treference\tra0.jpg", "cama\treference\tra1.jpg", "camb\treference\trb0.jpg",
                    "camb\treference\trb1.jpg", "cama\tpositives\tp.jpg", "camb\tnegatives\tn.jpg"]  # fmt: skip
