"""Smoke against each camera's normal: a per-cell head that compares a look with the camera's reference.

Why: on cameras it never saw, the cold-start head (models/smoke.py) confuses a view's own haze,
clouds and glare with plumes. What separates a plume from those is how far a cell now lies outside
the range the same cell showed on quiet looks of the same camera. The edge learns that range per
camera without labels (edge/reference/); this head reads the look's embedding next to it.

Recipe (measured on view-disjoint splits, docs/models.md):
- embedding: the shipped cold graph's 1280-channel conv-head features, projected per cell onto their
  first `EMB_DIM` principal components (a fixed 1x1 convolution), so a camera's reference costs
  3 x 64 x 300 floats (230 KB) per light mode;
- head: per cell, [e, e - mean, (e - mean) / (std + 0.1), e - max] -> small MLP -> logit. It gets no
  cold-start logit: that head was fine-tuned on the training views, so on them its logit is nearly
  always right and a head stacked on it learns to copy it, which does not transfer (AUC 0.88 with it,
  0.94 without, on views never trained on);
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
from hazardwatch.models.data import Sample
from hazardwatch.models.smoke import GRID_H, GRID_W, HEIGHT, WIDTH, cell_targets
from onnx import TensorProto, helper, numpy_helper
from torch import nn

log = logging.getLogger(__name__)

EMB_DIM = 64
K_REFERENCE = 16
STD_FLOOR = 0.1
FEATURES = 1280


@dataclass
class Embedded:
    """Projected embeddings of every sample and its mirror image, [N, D, Gh, Gw] float32."""

    emb: np.ndarray
    emb_mirror: np.ndarray
    prints: np.ndarray  # layout fingerprints, for the nearest references


class ReferenceHead(nn.Module):
    """Per-cell MLP over a look's embedding and its camera's reference statistics."""

    def __init__(self, dim: int = EMB_DIM, hidden: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4 * dim, hidden, 1), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1),
        )  # fmt: skip

    def forward(self, emb: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        mean, std, top = reference.chunk(3, 1)
        x = torch.cat([emb, emb - mean, (emb - mean) / (std + STD_FLOOR), emb - top], 1)
        return self.net(x)


# -- the cold graph's features ---------------------------------------------------------------------
def features_tensor(model: onnx.ModelProto) -> str:
    """The conv head's output (after its QDQ pair in an int8 graph): what the embedding projects."""
    nodes = list(model.graph.node)
    conv = next((n for n in nodes if n.op_type == "Conv" and "conv_head" in n.input[1]), None)
    if conv is None:
        raise ValueError("the cold graph has no conv_head convolution to take features from")
    name = conv.output[0]
    for op in ("QuantizeLinear", "DequantizeLinear"):
        nxt = next((n for n in nodes if n.op_type == op and n.input[0] == name), None)
        if nxt is not None:
            name = nxt.output[0]
    return name


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


def _features(session: ort.InferenceSession, name: str, path: Path) -> np.ndarray:
    """[2, 1280, Gh, Gw]: the frame and its mirror image."""
    x = _preprocess(path)[None]
    batch = np.concatenate([x, x[:, :, :, ::-1].copy()])
    return session.run([name], {session.get_inputs()[0].name: batch})[0]


def fit_projection(
    cold: onnx.ModelProto, samples: Sequence[Sample], n_frames: int = 400, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of conv-head cell features over training frames: (P [D, 1280], mean [1280])."""
    name = features_tensor(cold)
    model = onnx.ModelProto()
    model.CopyFrom(cold)
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = _session(model)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), min(n_frames, len(samples)), replace=False)
    rows = []
    for k in picks:
        f = _features(session, name, samples[int(k)].path)[0].reshape(FEATURES, -1)
        rows.append(f[:, rng.choice(f.shape[1], 30, replace=False)].T)
    cells = np.concatenate(rows).astype(np.float64)
    mean = cells.mean(0)
    _, _, vt = np.linalg.svd(cells - mean, full_matrices=False)
    return vt[:EMB_DIM].astype(np.float32), mean.astype(np.float32)


def embed_all(cold: onnx.ModelProto, proj: tuple[np.ndarray, np.ndarray], samples: Sequence[Sample]) -> Embedded:
    """Run the cold graph once per frame (and mirror) and keep only the projected embedding."""
    from hazardwatch.models.data import fingerprint
    from tqdm import tqdm

    p, mean = proj
    name = features_tensor(cold)
    model = onnx.ModelProto()
    model.CopyFrom(cold)
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = _session(model)
    n = len(samples)
    emb = np.zeros((n, EMB_DIM, GRID_H, GRID_W), np.float32)
    mirror = np.zeros_like(emb)
    prints = []
    for k, s in enumerate(tqdm(samples, desc="embedding frames", unit="frame")):
        f = _features(session, name, s.path)
        e = np.einsum("dc,nchw->ndhw", p, f - mean[None, :, None, None])
        emb[k], mirror[k] = e[0], e[1]
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
    """[3D, Gh, Gw]: mean, std (ddof 1, as the edge's exact phase) and max over the reference looks."""
    return np.concatenate([emb.mean(0), emb.std(0, ddof=1), emb.max(0)]).astype(np.float32)


def _loss(logits: torch.Tensor, targets: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    from hazardwatch.models.smoke import smoke_loss

    return smoke_loss(logits, targets, positive)


def train_head(
    samples: Sequence[Sample],
    data: Embedded,
    train_idx: np.ndarray,
    epochs: int = 2,
    seed: int = 0,
    batch: int = 32,
) -> ReferenceHead:
    """Pairs (frame, its view's reference) from the training frames; every positive, twice as many negatives."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    positive = np.array([s.positive for s in samples])
    pool = np.zeros(len(samples), bool)
    pool[train_idx] = True
    pool &= ~positive
    targets = np.stack([cell_targets(s.box, s.positive) for s in samples])
    head = ReferenceHead()
    opt = torch.optim.AdamW(head.parameters(), 3e-4, weight_decay=1e-3)
    pos_idx = train_idx[positive[train_idx]]
    neg_idx = train_idx[~positive[train_idx]]
    head.train()
    for epoch in range(epochs):
        order = rng.permutation(np.concatenate([pos_idx, rng.choice(neg_idx, 2 * len(pos_idx), replace=False)]))
        total, seen = 0.0, 0
        for start in range(0, len(order), batch):
            xs, refs, ts, ps = [], [], [], []
            for i in order[start : start + batch]:
                ref = reference_for(int(i), samples, data.prints, pool, rng, K_REFERENCE)
                if ref is None:
                    continue
                m = rng.random() < 0.5
                src = data.emb_mirror if m else data.emb
                xs.append(src[i])
                refs.append(reference_stats(src[ref]))
                ts.append(targets[i][:, ::-1] if m else targets[i])
                ps.append(positive[i])
            if not xs:
                continue
            loss = _loss(
                head(torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(refs))),
                torch.from_numpy(np.ascontiguousarray(np.stack(ts))),
                torch.from_numpy(np.array(ps)),
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xs)
            seen += len(xs)
        log.info("reference head epoch %d/%d: loss %.4f over %d pairs", epoch + 1, epochs, total / max(1, seen), seen)
    return head.eval()


def score_pairs(
    head: ReferenceHead, samples: Sequence[Sample], data: Embedded, idx: np.ndarray, pool: np.ndarray, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Image scores (max cell) of the samples at idx against references drawn from pool; (scores, positive)."""
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    with torch.no_grad():
        for i in idx:
            ref = reference_for(int(i), samples, data.prints, pool, rng, K_REFERENCE)
            if ref is None:
                continue
            logit = head(torch.from_numpy(data.emb[i][None]), torch.from_numpy(reference_stats(data.emb[ref])[None]))
            scores.append(float(torch.sigmoid(logit).max()))
            labels.append(samples[int(i)].positive)
    return np.array(scores), np.array(labels, bool)


# -- the shipped graph ---------------------------------------------------------------------------------
def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name)


def build_graph(cold: onnx.ModelProto, proj: tuple[np.ndarray, np.ndarray], head: ReferenceHead) -> onnx.ModelProto:
    """The cold graph plus input `reference` and outputs `embedding`, `adapted` (manifest `reference`)."""
    p, mean = proj
    model = onnx.ModelProto()
    model.CopyFrom(cold)
    g = model.graph
    feats = features_tensor(model)
    d = EMB_DIM
    g.input.append(helper.make_tensor_value_info("reference", TensorProto.FLOAT, ["batch", 3 * d, GRID_H, GRID_W]))
    inits = [
        _init("ref_proj_w", p[:, :, None, None]),
        _init("ref_proj_b", -(p @ mean)),
        _init("ref_std_floor", np.array(STD_FLOOR, np.float32)),
        onnx.numpy_helper.from_array(np.array([d, d, d], np.int64), "ref_split"),
    ]
    convs = [m for m in head.net if isinstance(m, nn.Conv2d)]
    for k, conv in enumerate(convs):
        inits.append(_init(f"ref_mlp{k}_w", conv.weight.detach().numpy()))
        inits.append(_init(f"ref_mlp{k}_b", conv.bias.detach().numpy()))
    g.initializer.extend(inits)
    nodes = [
        helper.make_node("Conv", [feats, "ref_proj_w", "ref_proj_b"], ["embedding"], name="ref_projection"),
        helper.make_node("Split", ["reference", "ref_split"], ["ref_mean", "ref_std", "ref_max"], axis=1),
        helper.make_node("Sub", ["embedding", "ref_mean"], ["ref_dev"]),
        helper.make_node("Add", ["ref_std", "ref_std_floor"], ["ref_spread"]),
        helper.make_node("Div", ["ref_dev", "ref_spread"], ["ref_z"]),
        helper.make_node("Sub", ["embedding", "ref_max"], ["ref_over"]),
        helper.make_node("Concat", ["embedding", "ref_dev", "ref_z", "ref_over"], ["ref_x"], axis=1),
        helper.make_node("Conv", ["ref_x", "ref_mlp0_w", "ref_mlp0_b"], ["ref_h0"]),
        helper.make_node("Relu", ["ref_h0"], ["ref_a0"]),
        helper.make_node("Conv", ["ref_a0", "ref_mlp1_w", "ref_mlp1_b"], ["ref_h1"]),
        helper.make_node("Relu", ["ref_h1"], ["ref_a1"]),
        helper.make_node("Conv", ["ref_a1", "ref_mlp2_w", "ref_mlp2_b"], ["adapted"]),
    ]
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", d, GRID_H, GRID_W]))
    g.output.append(helper.make_tensor_value_info("adapted", TensorProto.FLOAT, ["batch", 1, GRID_H, GRID_W]))
    onnx.checker.check_model(model)
    return model


def check_graph(model: onnx.ModelProto, proj: tuple[np.ndarray, np.ndarray], head: ReferenceHead, frame: Path) -> None:
    """The ONNX graph and the torch head agree on a real frame (guards the hand-built nodes)."""
    session = _session(model)
    x = _preprocess(frame)[None]
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (1, 3 * EMB_DIM, GRID_H, GRID_W)).astype(np.float32)
    ref[:, EMB_DIM : 2 * EMB_DIM] = np.abs(ref[:, EMB_DIM : 2 * EMB_DIM])
    emb, adapted = session.run(["embedding", "adapted"], {session.get_inputs()[0].name: x, "reference": ref})
    with torch.no_grad():
        want = head(torch.from_numpy(emb), torch.from_numpy(ref)).numpy()
    if not np.allclose(adapted, want, atol=1e-3):
        raise AssertionError(f"ONNX reference head differs from torch by {np.abs(adapted - want).max():.4f}")


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
