"""The reference head's training with a learnt stride-16 projection, on real HPWREN frames.

Why: the learnt projection is trained in torch but shipped as ONNX nodes written by hand; these tests
prove it learns, that the graph embeds exactly what the torch projection computes, and that the graph's
score equals the torch head's, so a wrong conversion fails here and not on a bureau's camera.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from hazardwatch.models import smoke_reference as sr  # noqa: E402
from hazardwatch.models.data import Sample, smoke_samples  # noqa: E402
from hazardwatch.models.smoke_reference_graph import build_graph, check_graph  # noqa: E402
from hazardwatch.models.train_reference import cold_graph  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "models" / "smoke-hpwren" / "smoke-hpwren-int8.onnx"


def test_a_learnt_projection_is_the_same_linear_map_as_its_graph_form() -> None:
    rng = np.random.default_rng(0)
    p = np.linalg.qr(rng.normal(size=(112, 16)))[0].T.astype(np.float32)  # orthonormal rows, like PCA's
    mean = rng.normal(size=112).astype(np.float32)
    module = sr.LearnedProjection(p, mean)
    x = rng.normal(size=(3, 112, 4, 5)).astype(np.float32)
    want = np.einsum("dc,nchw->ndhw", p, x - mean[None, :, None, None])
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), want, atol=1e-4)
    with torch.no_grad():  # after training the weight is no longer orthonormal: the round trip must still hold
        module.conv.weight.add_(torch.from_numpy(rng.normal(0, 0.3, (16, 112, 1, 1)).astype(np.float32)))
        module.conv.bias.add_(1.5)
    w, m = module.as_projection()
    got = np.einsum("dc,nchw->ndhw", w, x - m[None, :, None, None])
    np.testing.assert_allclose(got, module(torch.from_numpy(x)).detach().numpy(), atol=1e-3)


def _frames(shared_data: Path) -> list[Sample]:
    """A few boxed plumes and smoke-free frames, all one view group (enough for reference draws)."""
    samples = smoke_samples([shared_data / "smoke-hpwren"])
    pos = sorted((s for s in samples if s.positive), key=lambda s: s.path.name)[:6]
    neg = sorted((s for s in samples if not s.positive), key=lambda s: s.path.name)[:14]
    return [Sample(s.path, s.positive, s.box, "hpwren/view000") for s in [*pos, *neg]]


@pytest.mark.parametrize("kind", ["linear", "branch"])
def test_training_learns_the_fine_embedding_and_the_graph_matches_torch(shared_data: Path, kind: str) -> None:
    torch.set_num_threads(1)
    cold = cold_graph(onnx.load(MODEL))
    samples = _frames(shared_data)
    proj = sr.fit_projection(cold, samples, n_frames=8, cells=30)
    data = sr.embed_all(cold, proj, samples, keep_raw=[sr.FINE.name])
    assert data.raw[sr.FINE.name].shape == (len(samples), 2, sr.FINE.channels, *sr.FINE.grid)
    assert sr.COARSE.name not in data.raw  # the coarse scale keeps its fitted projection: no raw copy
    every = np.arange(len(samples))
    with pytest.raises(ValueError, match="s32 needs their raw features"):
        sr.train_head(samples, data, every, epochs=1, learn={sr.COARSE.name: kind}, fitted=proj)

    # reviewed boxes turn negatives into positives: with fewer than two negatives per positive
    # (6 positives, 8 negatives) a pass takes every negative instead of failing to draw 12
    few = np.arange(14)
    assert sr.train_head(samples, data, few, epochs=1, learn={sr.FINE.name: kind}, fitted=proj) is not None
    head = sr.train_head(samples, data, every, epochs=2, learn={sr.FINE.name: kind}, fitted=proj)
    torch.manual_seed(0)  # train_head draws its modules right after seeding (seed 0): the same start
    start = {k: v.detach() for k, v in sr.trainable_projection(kind, sr.FINE, proj[sr.FINE.name]).named_parameters()}
    moved = [k for k, v in head.projections[sr.FINE.name].named_parameters() if not torch.allclose(v, start[k])]
    assert moved, f"the {kind} embedding did not learn"

    graph = build_graph(cold, proj, head)
    check_graph(graph, head, samples[0].path)  # the graph's adapted score equals the torch heads'
    session = sr._session(graph)
    x = sr._preprocess(samples[0].path)[None]
    reference = np.zeros((1, 3 * sr.EMB_SIZE), np.float32)
    (embedding,) = session.run(["embedding"], {session.get_inputs()[0].name: x, "reference": reference})
    fine = embedding[0, sr.COARSE.size :].reshape(sr.FINE.dim, *sr.FINE.grid)
    raw = torch.from_numpy(np.asarray(data.raw[sr.FINE.name][0, 0], np.float32))[None]
    with torch.no_grad():
        want = head.projections[sr.FINE.name](raw)[0].numpy()
    # raw features are kept as float16 for training; the graph embeds from float32 ones
    np.testing.assert_allclose(fine, want, atol=0.05 * float(np.abs(want).max()))
    coarse = embedding[0, : sr.COARSE.size].reshape(sr.COARSE.dim, *sr.COARSE.grid)
    np.testing.assert_allclose(coarse, data.emb[sr.COARSE.name][0], atol=1e-3 * float(np.abs(coarse).max()))

    quiet = ~np.array([s.positive for s in samples])
    scores, labels, _ = sr.score_pairs(head, samples, data, every, quiet)
    assert len(scores) == len(samples) and labels.sum() == 6 and np.isfinite(scores).all()
    # a warming reference (4 looks, drawn among the same nearest frames) gives other statistics
    short, short_labels, _ = sr.score_pairs(head, samples, data, every, quiet, looks=4)
    assert np.array_equal(short_labels, labels) and np.isfinite(short).all() and not np.allclose(short, scores)
