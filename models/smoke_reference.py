"""Smoke against each camera's normal: a per-cell head that compares a look with the camera's reference.

Why: on cameras it never saw, the cold-start head (models/smoke.py) confuses a view's own haze,
clouds and glare with plumes. What separates a plume from those is how far a cell now lies outside
the range the same cell showed on quiet looks of the same camera. The edge learns that range per
camera without labels (edge/reference/); this head reads the look's embedding next to it.

Recipe (measured on view-disjoint splits, docs/models.md):
- embedding at two scales, each a fixed 1x1 projection onto the first principal components: the cold
  graph's 1280-channel conv-head features at stride 32 (32 of them, 15x20 cells) and the ImageNet
  backbone's 112-channel block-10 map at stride 16 (16 of them, 30x40 cells), where plumes under 2 %
  of the frame still fill a cell; a camera's reference costs 3 x 28,800 floats (346 KB) per light mode;
- head, per scale and per cell: [e, e - mean, (e - mean) / (std + 0.1), e - max] -> small MLP ->
  logit; the two probability maps are averaged on the 30x40 grid. It gets no cold-start logit: that
  head was fine-tuned on the training views, so on them its logit is nearly always right and a head
  stacked on it learns to copy it, which does not transfer (AUC 0.88 with it, 0.94 without);
- pairs: each training frame with `K` smoke-free frames of the same view group (the nearest by edge
  layout, itself excluded) as its reference; mirrored copies in half the draws;
- one or two passes over the data: the head overfits the views after that.

The cold graph is kept as it is, so the cold-start path and its figures do not change; the
projection and head are appended in fp32 (they cost about a millisecond).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from hazardwatch.models.data import Sample
from hazardwatch.models.smoke import GRID_H, GRID_W, HEIGHT, WIDTH, cell_targets

log = logging.getLogger(__name__)

K_REFERENCE = 16
STD_FLOOR = 0.1


@dataclass(frozen=True)
class Scale:
    """One embedding scale: which features of the cold graph, how many components, which grid."""

    name: str
    channels: int
    dim: int
    grid: tuple[int, int]

    @property
    def size(self) -> int:
        return self.dim * self.grid[0] * self.grid[1]


COARSE = Scale("s32", 1280, 32, (GRID_H, GRID_W))  # conv-head features, fine-tuned for smoke
FINE = Scale("s16", 112, 16, (2 * GRID_H, 2 * GRID_W))  # ImageNet block-10 map, small plumes
SCALES = (COARSE, FINE)
EMB_SIZE = sum(sc.size for sc in SCALES)

Projection = dict[str, tuple[np.ndarray, np.ndarray]]  # scale -> (P [dim, channels], mean [channels])


@dataclass
class Embedded:
    """Projected embeddings per scale of every sample and its mirror image, [N, dim, rows, cols] float32."""

    emb: dict[str, np.ndarray]
    emb_mirror: dict[str, np.ndarray]
    prints: np.ndarray  # layout fingerprints, for the nearest references


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


class TwoScaleHead(nn.Module):
    """One reference head per scale; the edge thresholds the mean of their probabilities on the fine grid."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({sc.name: ReferenceHead(sc.dim) for sc in SCALES})

    def forward(self, emb: dict[str, torch.Tensor], refs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: head(emb[name], refs[name]) for name, head in self.heads.items()}

    @staticmethod
    def combine(logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-cell probability on the fine grid: the mean of both scales (the coarse one repeated 2x2)."""
        coarse = torch.sigmoid(logits[COARSE.name]).repeat_interleave(2, 2).repeat_interleave(2, 3)
        return (coarse + torch.sigmoid(logits[FINE.name])) / 2


# -- the cold graph's features ---------------------------------------------------------------------
def _dequantized(nodes: list[onnx.NodeProto], name: str) -> str:
    """A tensor after its QDQ pair in an int8 graph (itself in an fp32 one)."""
    for op in ("QuantizeLinear", "DequantizeLinear"):
        nxt = next((n for n in nodes if n.op_type == op and n.input[0] == name), None)
        if nxt is not None:
            name = nxt.output[0]
    return name


def features_tensor(model: onnx.ModelProto, scale: Scale = COARSE) -> str:
    """s32: the conv head's output; s16: the input of block 11 (block 10's 112-channel map)."""
    nodes = list(model.graph.node)
    if scale.name == COARSE.name:
        conv = next((n for n in nodes if n.op_type == "Conv" and "conv_head" in n.input[1]), None)
        if conv is None:
            raise ValueError("the cold graph has no conv_head convolution to take features from")
        return _dequantized(nodes, conv.output[0])
    conv = next((n for n in nodes if n.op_type == "Conv" and "_blocks.11._expand_conv" in n.input[1]), None)
    if conv is None:
        raise ValueError("the cold graph has no block 11 to take stride-16 features from")
    return conv.input[0]


def _session(model: onnx.ModelProto, threads: int = 2) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


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


def fit_projection(cold: onnx.ModelProto, samples: Sequence[Sample], n_frames: int = 400, seed: int = 0) -> Projection:
    """Per scale, PCA of the cell features over training frames: (P [dim, channels], mean [channels])."""
    session = _feature_session(cold)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), min(n_frames, len(samples)), replace=False)
    rows: dict[str, list[np.ndarray]] = {sc.name: [] for sc in SCALES}
    for k in picks:
        feats = _features(session, cold, samples[int(k)].path)
        for sc in SCALES:
            f = feats[sc.name][0].reshape(sc.channels, -1)
            rows[sc.name].append(f[:, rng.choice(f.shape[1], 30, replace=False)].T)
    out: Projection = {}
    for sc in SCALES:
        cells = np.concatenate(rows[sc.name]).astype(np.float64)
        mean = cells.mean(0)
        _, _, vt = np.linalg.svd(cells - mean, full_matrices=False)
        out[sc.name] = (vt[: sc.dim].astype(np.float32), mean.astype(np.float32))
    return out


def embed_all(cold: onnx.ModelProto, proj: Projection, samples: Sequence[Sample]) -> Embedded:
    """Run the cold graph once per frame (and mirror) and keep only the projected embeddings."""
    from tqdm import tqdm

    from hazardwatch.models.data import fingerprint

    session = _feature_session(cold)
    n = len(samples)
    emb = {sc.name: np.zeros((n, sc.dim, *sc.grid), np.float32) for sc in SCALES}
    mirror = {sc.name: np.zeros((n, sc.dim, *sc.grid), np.float32) for sc in SCALES}
    prints = []
    for k, s in enumerate(tqdm(samples, desc="embedding frames", unit="frame")):
        feats = _features(session, cold, s.path)
        for sc in SCALES:
            p, mean = proj[sc.name]
            e = np.einsum("dc,nchw->ndhw", p, feats[sc.name] - mean[None, :, None, None])
            emb[sc.name][k], mirror[sc.name][k] = e[0], e[1]
        prints.append(fingerprint(cv2.imread(str(s.path), cv2.IMREAD_REDUCED_COLOR_4)))
    return Embedded(emb, mirror, np.stack(prints))


# -- pairs and training ------------------------------------------------------------------------------
def reference_for(
    i: int, samples: Sequence[Sample], prints: np.ndarray, pool: np.ndarray, rng: np.random.Generator, k: int
) -> np.ndarray | None:
    """K smoke-free frames of sample i's view group, drawn among the 2K nearest by layout; None if too few."""
    group = samples[i].group
    cands = np.array([j for j in np.where(pool)[0] if j != i and samples[j].group == group], int)
    if len(cands) < 4:
        return None
    near = cands[np.argsort(-(prints[cands] @ prints[i]))[: 2 * k]]
    return rng.choice(near, min(k, len(near)), replace=False)


def reference_stats(emb: np.ndarray) -> np.ndarray:
    """Mean, std (ddof 1, as the edge's exact phase) and max over the reference looks, on the first axis."""
    return np.concatenate([emb.mean(0), emb.std(0, ddof=1), emb.max(0)]).astype(np.float32)


def _pair(data: Embedded, i: int, ref: np.ndarray, mirror: bool) -> tuple[dict, dict]:
    src = data.emb_mirror if mirror else data.emb
    return {n: src[n][i] for n in src}, {n: reference_stats(src[n][ref]) for n in src}


def _stack(items: list[dict]) -> dict[str, torch.Tensor]:
    return {n: torch.from_numpy(np.ascontiguousarray(np.stack([it[n] for it in items]))) for n in items[0]}


def train_head(
    samples: Sequence[Sample],
    data: Embedded,
    train_idx: np.ndarray,
    epochs: int = 6,
    seed: int = 0,
    batch: int = 32,
) -> TwoScaleHead:
    """Pairs (frame, its view's reference) from the training frames; every positive, twice as many negatives.
    Each scale's head learns on its own grid's targets."""
    from hazardwatch.models.smoke import smoke_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    positive = np.array([s.positive for s in samples])
    pool = np.zeros(len(samples), bool)
    pool[train_idx] = True
    pool &= ~positive
    targets = {sc.name: np.stack([cell_targets(s.box, s.positive, sc.grid) for s in samples]) for sc in SCALES}
    head = TwoScaleHead()
    opt = torch.optim.AdamW(head.parameters(), 3e-4, weight_decay=1e-3)
    pos_idx = train_idx[positive[train_idx]]
    neg_idx = train_idx[~positive[train_idx]]
    head.train()
    for epoch in range(epochs):
        order = rng.permutation(np.concatenate([pos_idx, rng.choice(neg_idx, 2 * len(pos_idx), replace=False)]))
        total, seen = 0.0, 0
        for start in range(0, len(order), batch):
            embs, refs, ts, ps = [], [], [], []
            for i in order[start : start + batch]:
                ref = reference_for(int(i), samples, data.prints, pool, rng, K_REFERENCE)
                if ref is None:
                    continue
                m = bool(rng.random() < 0.5)
                e, r = _pair(data, int(i), ref, m)
                embs.append(e)
                refs.append(r)
                ts.append({n: t[i][:, ::-1] if m else t[i] for n, t in targets.items()})
                ps.append(positive[i])
            if not embs:
                continue
            logits = head(_stack(embs), _stack(refs))
            tt, pp = _stack(ts), torch.from_numpy(np.array(ps))
            loss = sum(smoke_loss(logits[n], tt[n], pp) for n in logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(embs)
            seen += len(embs)
        log.info("reference head epoch %d/%d: loss %.4f over %d pairs", epoch + 1, epochs, total / max(1, seen), seen)
    return head.eval()


def score_pairs(
    head: TwoScaleHead, samples: Sequence[Sample], data: Embedded, idx: np.ndarray, pool: np.ndarray, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Image scores (max cell of the combined map) of the samples at idx against references drawn from
    pool; (scores, positive)."""
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    with torch.no_grad():
        for i in idx:
            ref = reference_for(int(i), samples, data.prints, pool, rng, K_REFERENCE)
            if ref is None:
                continue
            e, r = _pair(data, int(i), ref, False)
            scores.append(float(head.combine(head(_stack([e]), _stack([r]))).max()))
            labels.append(samples[int(i)].positive)
    return np.array(scores), np.array(labels, bool)


# -- the shipped graph ---------------------------------------------------------------------------------
def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name)


def _scale_head_nodes(sc: Scale, head: ReferenceHead, inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """One scale's reference head: deviations from the camera's statistics, then the per-cell MLP."""
    n = f"ref_{sc.name}"
    convs = [m for m in head.net if isinstance(m, nn.Conv2d)]
    for k, conv in enumerate(convs):
        inits.append(_init(f"{n}_mlp{k}_w", conv.weight.detach().numpy()))
        inits.append(_init(f"{n}_mlp{k}_b", conv.bias.detach().numpy()))
    e = f"{n}_e"
    return [
        helper.make_node("Sub", [e, f"{n}_mean"], [f"{n}_dev"]),
        helper.make_node("Add", [f"{n}_std", "ref_std_floor"], [f"{n}_spread"]),
        helper.make_node("Div", [f"{n}_dev", f"{n}_spread"], [f"{n}_z"]),
        helper.make_node("Sub", [e, f"{n}_max"], [f"{n}_over"]),
        helper.make_node("Concat", [e, f"{n}_dev", f"{n}_z", f"{n}_over"], [f"{n}_x"], axis=1),
        helper.make_node("Conv", [f"{n}_x", f"{n}_mlp0_w", f"{n}_mlp0_b"], [f"{n}_h0"]),
        helper.make_node("Relu", [f"{n}_h0"], [f"{n}_a0"]),
        helper.make_node("Conv", [f"{n}_a0", f"{n}_mlp1_w", f"{n}_mlp1_b"], [f"{n}_h1"]),
        helper.make_node("Relu", [f"{n}_h1"], [f"{n}_a1"]),
        helper.make_node("Conv", [f"{n}_a1", f"{n}_mlp2_w", f"{n}_mlp2_b"], [f"{n}_logit"]),
        helper.make_node("Sigmoid", [f"{n}_logit"], [f"{n}_p"]),
    ]


def build_graph(cold: onnx.ModelProto, proj: Projection, head: TwoScaleHead) -> onnx.ModelProto:
    """The cold graph plus input `reference` [N, 3E] and outputs `embedding` [N, E] and `adapted`
    [N, 1, 30, 40] (manifest `reference`)."""
    model = onnx.ModelProto()
    model.CopyFrom(cold)
    g = model.graph
    g.input.append(helper.make_tensor_value_info("reference", TensorProto.FLOAT, ["batch", 3 * EMB_SIZE]))
    sizes = [sc.size for sc in SCALES]
    inits = [
        _init("ref_std_floor", np.array(STD_FLOOR, np.float32)),
        _init("ref_half", np.array(0.5, np.float32)),
        _init("ref_one", np.array(1.0, np.float32)),
        _init("ref_eps", np.array(1e-6, np.float32)),
        _init("ref_one_minus_eps", np.array(1 - 1e-6, np.float32)),
        _init("ref_up", np.array([1, 1, 2, 2], np.float32)),
        numpy_helper.from_array(np.array([EMB_SIZE] * 3, np.int64), "ref_split_stats"),
        numpy_helper.from_array(np.array(sizes, np.int64), "ref_split_scales"),
    ]
    nodes = [helper.make_node("Split", ["reference", "ref_split_stats"], ["ref_mean", "ref_std", "ref_max"], axis=1)]
    for stat in ("mean", "std", "max"):
        nodes.append(
            helper.make_node(
                "Split", [f"ref_{stat}", "ref_split_scales"], [f"ref_{sc.name}_{stat}_flat" for sc in SCALES], axis=1
            )
        )
    for sc in SCALES:
        p, mean = proj[sc.name]
        inits += [
            _init(f"ref_{sc.name}_proj_w", p[:, :, None, None]),
            _init(f"ref_{sc.name}_proj_b", -(p @ mean)),
            numpy_helper.from_array(np.array([-1, sc.dim, *sc.grid], np.int64), f"ref_{sc.name}_shape"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [features_tensor(cold, sc), f"ref_{sc.name}_proj_w", f"ref_{sc.name}_proj_b"],
                [f"ref_{sc.name}_e"],
            ),
            helper.make_node("Flatten", [f"ref_{sc.name}_e"], [f"ref_{sc.name}_e_flat"], axis=1),
        ]
        for stat in ("mean", "std", "max"):
            nodes.append(
                helper.make_node(
                    "Reshape", [f"ref_{sc.name}_{stat}_flat", f"ref_{sc.name}_shape"], [f"ref_{sc.name}_{stat}"]
                )
            )
        nodes += _scale_head_nodes(sc, head.heads[sc.name], inits)
    coarse, fine = f"ref_{COARSE.name}_p", f"ref_{FINE.name}_p"
    nodes += [
        helper.make_node("Concat", [f"ref_{sc.name}_e_flat" for sc in SCALES], ["embedding"], axis=1),
        helper.make_node(
            "Resize",
            [coarse, "", "ref_up"],
            ["ref_coarse_up"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Add", ["ref_coarse_up", fine], ["ref_psum"]),
        helper.make_node("Mul", ["ref_psum", "ref_half"], ["ref_prob"]),
        helper.make_node("Clip", ["ref_prob", "ref_eps", "ref_one_minus_eps"], ["ref_prob_c"]),
        helper.make_node("Log", ["ref_prob_c"], ["ref_log_p"]),
        helper.make_node("Sub", ["ref_one", "ref_prob_c"], ["ref_q"]),
        helper.make_node("Log", ["ref_q"], ["ref_log_q"]),
        helper.make_node("Sub", ["ref_log_p", "ref_log_q"], ["adapted"]),  # the logit of the mean probability
    ]
    g.initializer.extend(inits)
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMB_SIZE]))
    g.output.append(helper.make_tensor_value_info("adapted", TensorProto.FLOAT, ["batch", 1, *FINE.grid]))
    onnx.checker.check_model(model)
    return model


def check_graph(model: onnx.ModelProto, head: TwoScaleHead, frame: Path) -> None:
    """The ONNX graph and the torch heads agree on a real frame (guards the hand-built nodes)."""
    session = _session(model)
    x = _preprocess(frame)[None]
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (1, 3 * EMB_SIZE)).astype(np.float32)
    ref[:, EMB_SIZE : 2 * EMB_SIZE] = np.abs(ref[:, EMB_SIZE : 2 * EMB_SIZE])
    emb, adapted = session.run(["embedding", "adapted"], {session.get_inputs()[0].name: x, "reference": ref})
    embs, refs, at = {}, {}, 0
    for sc in SCALES:
        shape = (1, sc.dim, *sc.grid)
        embs[sc.name] = torch.from_numpy(emb[:, at : at + sc.size].reshape(shape))
        stats = [ref[:, k * EMB_SIZE + at : k * EMB_SIZE + at + sc.size].reshape(shape) for k in range(3)]
        refs[sc.name] = torch.from_numpy(np.concatenate(stats, 1))
        at += sc.size
    with torch.no_grad():
        want = head.combine(head(embs, refs)).numpy()
    got = 1.0 / (1.0 + np.exp(-adapted.astype(np.float64)))  # compared as probabilities: the logit of a
    if not np.allclose(got, want, atol=1e-4):  # saturated mean is ill-conditioned in float32
        raise AssertionError(f"ONNX reference head differs from torch by {np.abs(got - want).max():.6f}")


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
