"""The reference head as ONNX nodes appended to the cold smoke graph (no torch at inference).

Why hand-built nodes: the cold graph is kept byte for byte (its int8 QDQ nodes and the cold-start
figures do not move), and the head is a few 1x1 convolutions that are simplest to write directly.
`check_graph` compares the result with the torch heads on a real frame, so a wrong node fails training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from hazardwatch.models.smoke_reference import (
    EMB_SIZE,
    FINEST,
    SCALES,
    STD_FLOOR,
    LearnedProjection,
    MultiScaleHead,
    Projection,
    ProjectionBranch,
    ReferenceHead,
    Scale,
    _preprocess,
    _session,
    features_tensor,
)


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name)


def _scale_head_nodes(sc: Scale, head: ReferenceHead, inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """One scale's reference head: deviations from the camera's statistics, then the per-cell MLP -> logit."""
    n = f"ref_{sc.name}"
    convs = [m for m in head.net if isinstance(m, nn.Conv2d)]
    for k, conv in enumerate(convs):
        inits.append(_init(f"{n}_mlp{k}_w", conv.weight.detach().numpy()))
        if conv.bias is None:
            raise ValueError(f"{n}: the head's convolution {k} has no bias; the graph needs one")
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
    ]


def _embedding_nodes(
    sc: Scale,
    features: str,
    fitted: tuple[np.ndarray, np.ndarray],
    module: nn.Module | None,
    inits: list[onnx.TensorProto],
) -> list[onnx.NodeProto]:
    """The scale's embedding `ref_<scale>_e` from its raw features: a trained branch's convolutions, or
    one 1x1 convolution for a linear map (the fitted PCA, or a trained linear projection)."""
    n = f"ref_{sc.name}"
    if isinstance(module, ProjectionBranch):
        convs = [m for m in module.net if isinstance(m, nn.Conv2d)]
        nodes, x = [], features
        for k, conv in enumerate(convs):
            if conv.bias is None:
                raise ValueError(f"{n}: the branch's convolution {k} has no bias; the graph needs one")
            inits.append(_init(f"{n}_br{k}_w", conv.weight.detach().numpy()))
            inits.append(_init(f"{n}_br{k}_b", conv.bias.detach().numpy()))
            pad = conv.kernel_size[0] // 2
            last = k == len(convs) - 1
            out = f"{n}_e" if last else f"{n}_br{k}"
            nodes.append(
                helper.make_node("Conv", [x, f"{n}_br{k}_w", f"{n}_br{k}_b"], [out], group=conv.groups, pads=[pad] * 4)
            )
            if not last:
                nodes.append(helper.make_node("Relu", [out], [f"{out}_relu"]))
                x = f"{out}_relu"
        return nodes
    p, mean = module.as_projection() if isinstance(module, LearnedProjection) else fitted
    inits += [_init(f"{n}_proj_w", p[:, :, None, None]), _init(f"{n}_proj_b", -(p @ mean))]
    return [helper.make_node("Conv", [features, f"{n}_proj_w", f"{n}_proj_b"], [f"{n}_e"])]


def _per_cell_term(sc: Scale, combine: str, inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """The scale's probability (mean) or log-probability (geo), repeated onto the finest grid."""
    n = f"ref_{sc.name}"
    if combine == "mean":
        nodes = [helper.make_node("Sigmoid", [f"{n}_logit"], [f"{n}_term"])]
    else:  # log sigmoid(x) = -softplus(-x)
        nodes = [
            helper.make_node("Neg", [f"{n}_logit"], [f"{n}_neg"]),
            helper.make_node("Softplus", [f"{n}_neg"], [f"{n}_sp"]),
            helper.make_node("Neg", [f"{n}_sp"], [f"{n}_term"]),
        ]
    if sc.grid == FINEST.grid:
        return [*nodes, helper.make_node("Identity", [f"{n}_term"], [f"{n}_up"])]
    factor = FINEST.grid[0] // sc.grid[0]
    inits.append(_init(f"{n}_upscale", np.array([1, 1, factor, factor], np.float32)))
    up = helper.make_node(
        "Resize",
        [f"{n}_term", "", f"{n}_upscale"],
        [f"{n}_up"],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return [*nodes, up]


def build_graph(cold: onnx.ModelProto, proj: Projection, head: MultiScaleHead) -> onnx.ModelProto:
    """The cold graph plus input `reference` [N, 3E] and outputs `embedding` [N, E] and `adapted`
    [N, 1, rows, cols] on the finest grid (manifest `reference`). `proj` is the fitted PCA; a scale the
    head trained its own projection or branch for (`head.projections`) is embedded with that."""
    model = onnx.ModelProto()
    model.CopyFrom(cold)
    g = model.graph
    g.input.append(helper.make_tensor_value_info("reference", TensorProto.FLOAT, ["batch", 3 * EMB_SIZE]))
    inits = [
        _init("ref_std_floor", np.array(STD_FLOOR, np.float32)),
        _init("ref_share", np.array(1.0 / len(SCALES), np.float32)),
        _init("ref_one", np.array(1.0, np.float32)),
        _init("ref_eps", np.array(1e-6, np.float32)),
        _init("ref_one_minus_eps", np.array(1 - 1e-6, np.float32)),
        numpy_helper.from_array(np.array([EMB_SIZE] * 3, np.int64), "ref_split_stats"),
        numpy_helper.from_array(np.array([sc.size for sc in SCALES], np.int64), "ref_split_scales"),
    ]
    nodes = [helper.make_node("Split", ["reference", "ref_split_stats"], ["ref_mean", "ref_std", "ref_max"], axis=1)]
    for stat in ("mean", "std", "max"):
        outs = [f"ref_{sc.name}_{stat}_flat" for sc in SCALES]
        nodes.append(helper.make_node("Split", [f"ref_{stat}", "ref_split_scales"], outs, axis=1))
    trained = dict(head.projections.items())
    for sc in SCALES:
        n = f"ref_{sc.name}"
        module = trained.get(sc.name)
        inits.append(numpy_helper.from_array(np.array([-1, sc.dim, *sc.grid], np.int64), f"{n}_shape"))
        nodes += _embedding_nodes(sc, features_tensor(cold, sc), proj[sc.name], module, inits)
        nodes.append(helper.make_node("Flatten", [f"{n}_e"], [f"{n}_e_flat"], axis=1))
        nodes += [
            helper.make_node("Reshape", [f"{n}_{stat}_flat", f"{n}_shape"], [f"{n}_{stat}"])
            for stat in ("mean", "std", "max")
        ]
        scale_head = head.heads[sc.name]
        if not isinstance(scale_head, ReferenceHead):
            raise TypeError(f"{sc.name}: expected a ReferenceHead, got {type(scale_head).__name__}")
        nodes += _scale_head_nodes(sc, scale_head, inits)
        nodes += _per_cell_term(sc, head.combine_rule, inits)
    nodes += [
        helper.make_node("Concat", [f"ref_{sc.name}_e_flat" for sc in SCALES], ["embedding"], axis=1),
        helper.make_node("Sum", [f"ref_{sc.name}_up" for sc in SCALES], ["ref_term_sum"]),
        helper.make_node("Mul", ["ref_term_sum", "ref_share"], ["ref_term_mean"]),
    ]
    if head.combine_rule == "geo":
        nodes.append(helper.make_node("Exp", ["ref_term_mean"], ["ref_prob"]))
    else:
        nodes.append(helper.make_node("Identity", ["ref_term_mean"], ["ref_prob"]))
    nodes += [
        helper.make_node("Clip", ["ref_prob", "ref_eps", "ref_one_minus_eps"], ["ref_prob_c"]),
        helper.make_node("Log", ["ref_prob_c"], ["ref_log_p"]),
        helper.make_node("Sub", ["ref_one", "ref_prob_c"], ["ref_q"]),
        helper.make_node("Log", ["ref_q"], ["ref_log_q"]),
        helper.make_node("Sub", ["ref_log_p", "ref_log_q"], ["adapted"]),  # the logit of the combined probability
    ]
    g.initializer.extend(inits)
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMB_SIZE]))
    g.output.append(helper.make_tensor_value_info("adapted", TensorProto.FLOAT, ["batch", 1, *FINEST.grid]))
    onnx.checker.check_model(model)
    return model


def check_graph(model: onnx.ModelProto, head: MultiScaleHead, frame: Path) -> None:
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
    if not np.allclose(got, want, atol=1e-4):  # saturated combination is ill-conditioned in float32
        raise AssertionError(f"ONNX reference head differs from torch by {np.abs(got - want).max():.6f}")
