"""Smoke against each camera's normal: a per-cell head that compares a look with the camera's reference.

Why: on cameras it never saw, the cold-start head (models/smoke.py) confuses a view's own haze,
clouds and glare with plumes. What separates a plume from those is how far a cell now lies outside
the range the same cell showed on quiet looks of the same camera. The edge learns that range per
camera without labels (edge/reference/); this head reads the look's embedding next to it.

Recipe (measured on view-disjoint splits, docs/models.md):
- embedding at two scales: the cold graph's 1280-channel conv-head features at stride 32, projected
  onto their first 32 principal components (15x20 cells), and the ImageNet backbone's 112-channel
  block-10 map at stride 16 (30x40 cells, where plumes under 2 % of the frame still fill a cell),
  embedded in 16 dimensions by a small branch trained with the head (1.5.0, `ProjectionBranch`; 1.4.0
  projected it onto principal components too); a camera's reference costs 3 x 28,800 floats (346 KB)
  per light mode;
- head, per scale and per cell: [e, e - mean, (e - mean) / (std + 0.1), e - max] -> small MLP ->
  logit; the two probability maps meet on the 30x40 grid as their geometric mean (1.3.0 averaged
  them; docs/models.md has both measured). No cold-start logit: that
  head was fine-tuned on the training views, so on them its logit is nearly always right and a head
  stacked on it learns to copy it, which does not transfer (AUC 0.88 with it, 0.94 without);
- pairs: each training frame with `K` smoke-free frames of the same view group (the nearest by edge
  layout, itself excluded) as its reference; mirrored copies in half the draws;
- 6 passes (`hard_share`: mine that share of the negatives from the second pass on; 1.3.0: none).

The cold graph is kept as it is, so the cold-start path and its figures do not change; the
embedding and head are appended in fp32 (they cost about a millisecond).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from torch import nn

from hazardwatch.edge.detect.onnx_detector import session_options
from hazardwatch.models.data import Sample, read_bgr
from hazardwatch.models.smoke import GRID_H, GRID_W, HEIGHT, WIDTH, cell_targets

log = logging.getLogger(__name__)

K_REFERENCE = 16
STD_FLOOR = 0.1


@dataclass(frozen=True)
class Scale:
    """One embedding scale: which features of the cold graph (`block`: the input of that backbone block;
    None: the conv head's output), how many principal components, which grid."""

    name: str
    channels: int
    dim: int
    grid: tuple[int, int]
    block: int | None = None

    @property
    def size(self) -> int:
        return self.dim * self.grid[0] * self.grid[1]


COARSE = Scale("s32", 1280, 32, (GRID_H, GRID_W))  # conv-head features, fine-tuned for smoke
FINE = Scale("s16", 112, 16, (2 * GRID_H, 2 * GRID_W), block=11)  # ImageNet block-10 map, small plumes
SCALES = (COARSE, FINE)
FINEST = max(SCALES, key=lambda sc: sc.grid[0])  # the grid of the `adapted` output
EMB_SIZE = sum(sc.size for sc in SCALES)
COMBINE_RULES = ("geo", "mean")  # how the scales' per-cell probabilities meet (geo: geometric mean)

Projection = dict[str, tuple[np.ndarray, np.ndarray]]  # scale -> (P [dim, channels], mean [channels])


@dataclass
class Embedded:
    """Projected embeddings per scale of every sample and its mirror image, [N, dim, rows, cols] float32;
    for a scale whose projection is learnt, its raw features too ([N, 2, channels, rows, cols] float16,
    the frame and its mirror image)."""

    emb: dict[str, np.ndarray]
    emb_mirror: dict[str, np.ndarray]
    prints: np.ndarray  # layout fingerprints, for the nearest references
    raw: dict[str, np.ndarray] = field(default_factory=dict)


class ReferenceHead(nn.Module):
    """Per-cell MLP over a look's embedding and its camera's reference statistics (one scale)."""

    def __init__(self, dim: int, hidden: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4 * dim, hidden, 1), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1),
        )  # fmt: skip

    def forward(self, emb: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        mean, std, top = reference.chunk(3, 1)
        x = torch.cat([emb, emb - mean, (emb - mean) / (std + STD_FLOOR), emb - top], 1)
        return self.net(x)


class LearnedProjection(nn.Module):
    """A scale's 1x1 projection that starts at its principal components and is trained with the head.

    Why: PCA keeps what varies most between cells (sky against ridge), not necessarily what tells a thin
    plume from haze; trained on reference pairs the same linear map may keep more of the latter (measured
    in docs/models.md: within the seed spread so far, not shipped). Being linear, it is written into the
    graph exactly as a PCA projection is (`as_projection`)."""

    def __init__(self, p: np.ndarray, mean: np.ndarray) -> None:
        super().__init__()
        self.conv = nn.Conv2d(p.shape[1], p.shape[0], 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(p)[:, :, None, None])
            self.bias.copy_(torch.from_numpy(-(p @ mean)))

    @property
    def bias(self) -> torch.Tensor:
        if self.conv.bias is None:  # built with one; only a foreign state dict could lack it
            raise ValueError("the learnt projection has no bias")
        return self.conv.bias

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.conv(raw)

    def as_projection(self) -> tuple[np.ndarray, np.ndarray]:
        """(P, mean) with P @ (x - mean) == W @ x + b: the weight has full row rank, so mean = -pinv(W) b."""
        w = self.conv.weight.detach().numpy()[:, :, 0, 0].astype(np.float64)
        b = self.bias.detach().numpy().astype(np.float64)
        return w.astype(np.float32), (-np.linalg.pinv(w) @ b).astype(np.float32)


class ProjectionBranch(nn.Module):
    """A scale's embedding as a small branch over its raw features: 1x1 -> ReLU -> depthwise 3x3 -> ReLU
    -> 1x1, trained with the head from random weights.

    Why: a plume under 2 % of the frame is a few stride-16 cells whose neighbours matter (a thin column
    against the sky above it); the 3x3 step lets each cell's embedding see them, which no per-cell
    projection can. About 5 MFLOP per look at stride 16, and the embedding keeps its size, so the
    edge's reference memory does not change (docs/models.md, 1.5.0)."""

    def __init__(self, channels: int, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.ReLU(),
            nn.Conv2d(hidden, dim, 1),
        )  # fmt: skip

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.net(raw)


PROJECTION_KINDS = ("pca", "linear", "branch")  # how a scale's embedding is made from its raw features


def trainable_projection(kind: str, scale: Scale, fitted: tuple[np.ndarray, np.ndarray] | None) -> nn.Module:
    """The module a scale's embedding is trained as (`linear` starts at its fitted PCA)."""
    if kind == "linear":
        if fitted is None:
            raise ValueError(f"{scale.name}: a linear projection starts at the fitted PCA; none given")
        return LearnedProjection(*fitted)
    if kind == "branch":
        return ProjectionBranch(scale.channels, scale.dim)
    raise ValueError(f"projection {kind!r}: expected one of {', '.join(PROJECTION_KINDS[1:])} to train")


class MultiScaleHead(nn.Module):
    """One reference head per scale; the edge thresholds their combined probability on the finest grid:
    `geo` (1.4.0) their geometric mean, a cell flagged only where both scales agree; `mean` (1.3.0).
    `projections` holds the scales whose embedding is trained with the heads (`trainable_projection`);
    the others keep their fitted PCA."""

    def __init__(self, combine: str = "geo", projections: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        if combine not in COMBINE_RULES:
            raise ValueError(f"combine rule {combine!r}: expected one of {', '.join(COMBINE_RULES)}")
        self.combine_rule = combine
        self.heads = nn.ModuleDict({sc.name: ReferenceHead(sc.dim) for sc in SCALES})
        self.projections = nn.ModuleDict(projections or {})

    def forward(self, emb: dict[str, torch.Tensor], refs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: head(emb[name], refs[name]) for name, head in self.heads.items()}

    def combine(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-cell probability on the finest grid (coarser maps repeated onto it)."""
        terms = []
        for sc in SCALES:
            f = FINEST.grid[0] // sc.grid[0]
            term = (
                nn.functional.logsigmoid(logits[sc.name])
                if self.combine_rule == "geo"
                else torch.sigmoid(logits[sc.name])
            )
            terms.append(term.repeat_interleave(f, 2).repeat_interleave(f, 3))
        mean = torch.stack(terms).mean(0)
        return torch.exp(mean) if self.combine_rule == "geo" else mean


# -- the cold graph's features ---------------------------------------------------------------------
def _dequantized(nodes: list[onnx.NodeProto], name: str) -> str:
    """A tensor after its QDQ pair in an int8 graph (itself in an fp32 one)."""
    for op in ("QuantizeLinear", "DequantizeLinear"):
        nxt = next((n for n in nodes if n.op_type == op and n.input[0] == name), None)
        if nxt is not None:
            name = nxt.output[0]
    return name


def features_tensor(model: onnx.ModelProto, scale: Scale = COARSE) -> str:
    """The conv head's output (block None), else the input of the scale's backbone block."""
    nodes = list(model.graph.node)
    if scale.block is None:
        conv = next((n for n in nodes if n.op_type == "Conv" and "conv_head" in n.input[1]), None)
        if conv is None:
            raise ValueError("the cold graph has no conv_head convolution to take features from")
        return _dequantized(nodes, conv.output[0])
    tag = f"_blocks.{scale.block}._expand_conv"
    conv = next((n for n in nodes if n.op_type == "Conv" and tag in n.input[1]), None)
    if conv is None:
        raise ValueError(f"the cold graph has no block {scale.block} to take {scale.name} features from")
    return conv.input[0]


def _session(model: onnx.ModelProto, threads: int = 1) -> ort.InferenceSession:
    """One thread by default: training shares small machines, and the graph is run frame by frame."""
    # The edge's own options: embeddings learnt from must be the ones the edge computes, on any CPU.
    return ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])


def _preprocess(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"{path}: cannot decode image")
    x = cv2.cvtColor(cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return ((x.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)


def _feature_session(cold: onnx.ModelProto) -> ort.InferenceSession:
    """The cold graph with every scale's features as extra outputs."""
    model = onnx.ModelProto()
    model.CopyFrom(cold)
    for sc in SCALES:
        model.graph.output.append(helper.make_tensor_value_info(features_tensor(cold, sc), TensorProto.FLOAT, None))
    return _session(model)


def _features(session: ort.InferenceSession, cold: onnx.ModelProto, path: Path) -> dict[str, np.ndarray]:
    """Per scale [2, channels, rows, cols]: the frame and its mirror image."""
    x = _preprocess(path)[None]
    batch = np.concatenate([x, x[:, :, :, ::-1].copy()])
    names = [features_tensor(cold, sc) for sc in SCALES]
    outs = session.run(names, {session.get_inputs()[0].name: batch})
    return {sc.name: out for sc, out in zip(SCALES, outs, strict=True)}


def fit_projection(
    cold: onnx.ModelProto, samples: Sequence[Sample], n_frames: int = 400, seed: int = 0, cells: int = 150
) -> Projection:
    """Per scale, PCA of `cells` random cells per training frame (more: steadier late components)."""
    session = _feature_session(cold)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), min(n_frames, len(samples)), replace=False)
    rows: dict[str, list[np.ndarray]] = {sc.name: [] for sc in SCALES}
    for k in picks:
        feats = _features(session, cold, samples[int(k)].path)
        for sc in SCALES:
            f = feats[sc.name][0].reshape(sc.channels, -1)
            rows[sc.name].append(f[:, rng.choice(f.shape[1], cells, replace=False)].T)
    out: Projection = {}
    for sc in SCALES:
        stack = np.concatenate(rows[sc.name]).astype(np.float64)
        mean = stack.mean(0)
        _, _, vt = np.linalg.svd(stack - mean, full_matrices=False)
        out[sc.name] = (vt[: sc.dim].astype(np.float32), mean.astype(np.float32))
    return out


def embed_all(
    cold: onnx.ModelProto, proj: Projection, samples: Sequence[Sample], keep_raw: Sequence[str] = ()
) -> Embedded:
    """Run the cold graph once per frame (and mirror) and keep the projected embeddings, and the raw
    features (float16) of the scales named in `keep_raw`, whose projection will be learnt."""
    from tqdm import tqdm

    from hazardwatch.models.data import fingerprint

    session = _feature_session(cold)
    n = len(samples)
    emb = {sc.name: np.zeros((n, sc.dim, *sc.grid), np.float32) for sc in SCALES}
    mirror = {sc.name: np.zeros((n, sc.dim, *sc.grid), np.float32) for sc in SCALES}
    raw = {sc.name: np.zeros((n, 2, sc.channels, *sc.grid), np.float16) for sc in SCALES if sc.name in keep_raw}
    prints = []
    for k, s in enumerate(tqdm(samples, desc="embedding frames", unit="frame")):
        feats = _features(session, cold, s.path)
        for name in raw:
            raw[name][k] = feats[name]
        for sc in SCALES:
            p, mean = proj[sc.name]
            e = np.einsum("dc,nchw->ndhw", p, feats[sc.name] - mean[None, :, None, None])
            emb[sc.name][k], mirror[sc.name][k] = e[0], e[1]
        prints.append(fingerprint(read_bgr(s.path, cv2.IMREAD_REDUCED_COLOR_4)))
    return Embedded(emb, mirror, np.stack(prints), raw)


# -- pairs and training ------------------------------------------------------------------------------
def reference_for(
    i: int,
    samples: Sequence[Sample],
    prints: np.ndarray,
    pool: np.ndarray,
    rng: np.random.Generator,
    k: int,
    among: int | None = None,
) -> np.ndarray | None:
    """K smoke-free frames of sample i's view group, drawn among the `among` (default 2K) nearest by
    layout; None if too few."""
    group = samples[i].group
    cands = np.array([j for j in np.where(pool)[0] if j != i and samples[j].group == group], int)
    if len(cands) < 4:
        return None
    near = cands[np.argsort(-(prints[cands] @ prints[i]))[: among or 2 * k]]
    return rng.choice(near, min(k, len(near)), replace=False)


def reference_stats(emb: np.ndarray) -> np.ndarray:
    """Mean, std (ddof 1, as the edge's exact phase) and max over the reference looks, on the first axis."""
    return np.concatenate([emb.mean(0), emb.std(0, ddof=1), emb.max(0)]).astype(np.float32)


def _torch_stats(emb: torch.Tensor) -> torch.Tensor:
    """`reference_stats` in torch, so a learnt projection gets gradients through the reference too."""
    return torch.cat([emb.mean(0), emb.std(0, unbiased=True), emb.max(0).values])


def _pair(
    head: MultiScaleHead, data: Embedded, i: int, ref: np.ndarray, mirror: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Sample i's embedding and its reference's statistics per scale; a scale with a learnt projection
    is projected from its raw features now (with gradients while training)."""
    src = data.emb_mirror if mirror else data.emb
    emb, refs = {}, {}
    for n in src:
        if n in head.projections:
            x = torch.from_numpy(np.asarray(data.raw[n][np.concatenate([[i], ref]), int(mirror)], np.float32))
            e = head.projections[n](x)
            emb[n], refs[n] = e[0], _torch_stats(e[1:])
        else:
            emb[n] = torch.from_numpy(np.ascontiguousarray(src[n][i]))
            refs[n] = torch.from_numpy(reference_stats(src[n][ref]))
    return emb, refs


def _stack(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {n: torch.stack([it[n] for it in items]) for n in items[0]}


def _stack_targets(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {n: torch.from_numpy(np.ascontiguousarray(np.stack([it[n] for it in items]))) for n in items[0]}


def train_head(
    samples: Sequence[Sample],
    data: Embedded,
    train_idx: np.ndarray,
    epochs: int = 6,
    seed: int = 0,
    batch: int = 32,
    combine: str = "geo",
    hard_share: float = 0.0,
    learn: dict[str, str] | None = None,
    fitted: Projection | None = None,
    projection_lr: float = 1e-3,
) -> MultiScaleHead:
    """Pairs (frame, its view's reference) from the training frames; every positive, twice as many negatives
    (all of them when there are fewer).
    Each scale's head learns on its own grid's targets; `combine` is how the graph will join them. From the
    second pass on, `hard_share` of the negatives are the ones the head scores highest (haze, clouds and
    glare it still mistakes for smoke), the rest drawn at random. The scales in `learn` (scale name ->
    `linear` or `branch`, `trainable_projection`; `data.raw` must hold their raw features) get their
    embedding trained with the heads at `projection_lr`; `fitted` is the PCA a linear one starts at."""
    from hazardwatch.models.smoke import smoke_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    positive = np.array([s.positive for s in samples])
    pool = np.zeros(len(samples), bool)
    pool[train_idx] = True
    pool &= ~positive
    targets = {sc.name: np.stack([cell_targets(s.box, s.positive, sc.grid) for s in samples]) for sc in SCALES}
    learn = learn or {}
    missing = [name for name in learn if name not in data.raw]
    if missing:
        names = ", ".join(missing)
        raise ValueError(f"learning the projection of {names} needs their raw features (embed_all keep_raw)")
    by_name = {sc.name: sc for sc in SCALES}
    modules = {
        name: trainable_projection(kind, by_name[name], (fitted or {}).get(name)) for name, kind in learn.items()
    }
    head = MultiScaleHead(combine, modules)
    groups: list[dict[str, Any]] = [{"params": head.heads.parameters(), "lr": 3e-4}]
    if learn:
        groups.append({"params": head.projections.parameters(), "lr": projection_lr})
    opt = torch.optim.AdamW(groups, weight_decay=1e-3)
    pos_idx = train_idx[positive[train_idx]]
    neg_idx = train_idx[~positive[train_idx]]
    head.train()
    for epoch in range(epochs):
        n_neg = min(2 * len(pos_idx), len(neg_idx))  # every negative once a pass when there are too few
        n_hard = int(hard_share * n_neg) if epoch > 0 else 0
        hard = _hardest(head, samples, data, neg_idx, pool, rng, n_hard) if n_hard else np.zeros(0, int)
        rest = rng.choice(np.setdiff1d(neg_idx, hard), n_neg - len(hard), replace=False)
        order = rng.permutation(np.concatenate([pos_idx, hard, rest]))
        total, seen = 0.0, 0
        for start in range(0, len(order), batch):
            embs, refs, ts, ps = [], [], [], []
            for i in order[start : start + batch]:
                ref = reference_for(int(i), samples, data.prints, pool, rng, K_REFERENCE)
                if ref is None:
                    continue
                m = bool(rng.random() < 0.5)
                e, r = _pair(head, data, int(i), ref, m)
                embs.append(e)
                refs.append(r)
                ts.append({n: t[i][:, ::-1] if m else t[i] for n, t in targets.items()})
                ps.append(positive[i])
            if not embs:
                continue
            logits = head(_stack(embs), _stack(refs))
            tt, pp = _stack_targets(ts), torch.from_numpy(np.array(ps))
            loss = sum((smoke_loss(logits[n], tt[n], pp) for n in logits), torch.zeros(()))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(embs)
            seen += len(embs)
        log.info("reference head epoch %d/%d: loss %.4f over %d pairs", epoch + 1, epochs, total / max(1, seen), seen)
    return head.eval()


def plume_area(sample: Sample) -> float:
    """The boxed plume's share of the frame (nan without a box)."""
    if sample.box is None:
        return float("nan")
    x1, y1, x2, y2 = sample.box
    return (x2 - x1) * (y2 - y1)


SIZE_BANDS = (("under_1pct", 0.0, 0.01), ("1_2pct", 0.01, 0.02), ("2_5pct", 0.02, 0.05), ("over_5pct", 0.05, 1.01))


def recall_by_size(labels: np.ndarray, areas: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall at the threshold per plume-size band (`SIZE_BANDS`, share of the frame); empty bands left out."""
    out = {}
    for key, lo, hi in SIZE_BANDS:
        sel = labels & (areas >= lo) & (areas < hi)
        if sel.any():
            out[key] = float((scores[sel] > threshold).mean())
    return out


def _hardest(
    head: MultiScaleHead,
    samples: Sequence[Sample],
    data: Embedded,
    neg_idx: np.ndarray,
    pool: np.ndarray,
    rng: np.random.Generator,
    n: int,
) -> np.ndarray:
    """The n negatives the head now scores highest, each against a reference drawn from its view."""
    head.eval()
    scores = np.full(len(neg_idx), -1.0)
    with torch.no_grad():
        for k, i in enumerate(neg_idx):
            ref = reference_for(int(i), samples, data.prints, pool, rng, K_REFERENCE)
            if ref is not None:
                e, r = _pair(head, data, int(i), ref, False)
                scores[k] = float(head.combine(head(_stack([e]), _stack([r]))).max())
    head.train()
    return neg_idx[np.argsort(-scores)[:n]]


def score_pairs(
    head: MultiScaleHead,
    samples: Sequence[Sample],
    data: Embedded,
    idx: np.ndarray,
    pool: np.ndarray,
    seed: int = 1,
    looks: int = K_REFERENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image scores (max cell of the combined map) of the samples at idx against references of `looks`
    frames drawn from pool, among the same nearest frames whatever `looks` is (a shorter reference
    is fewer looks of the same conditions, not nearer ones); (scores, positive, plume area)."""
    rng = np.random.default_rng(seed)
    scores, labels, areas = [], [], []
    with torch.no_grad():
        for i in idx:
            ref = reference_for(int(i), samples, data.prints, pool, rng, looks, among=2 * K_REFERENCE)
            if ref is None:
                continue
            e, r = _pair(head, data, int(i), ref, False)
            scores.append(float(head.combine(head(_stack([e]), _stack([r]))).max()))
            labels.append(samples[int(i)].positive)
            areas.append(plume_area(samples[int(i)]))
    return np.array(scores), np.array(labels, bool), np.array(areas)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged)."""
    from scipy.stats import rankdata

    r = rankdata(scores)
    n1 = int(labels.sum())
    n0 = len(labels) - n1
    return float((r[labels].sum() - n1 * (n1 + 1) / 2) / max(1, n1 * n0))


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> tuple[float, float]:
    """(recall, threshold) at the highest threshold letting at most `fpr` of negatives through."""
    neg = np.sort(scores[~labels])[::-1]
    k = int(np.floor(fpr * len(neg)))
    thr = float(neg[k]) if k < len(neg) else 0.0
    return float((scores[labels] > thr).mean()), thr
