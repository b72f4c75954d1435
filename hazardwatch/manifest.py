"""The model manifest: what a model file is, where its data came from and how well it measured.

A manifest sits beside its ONNX file as `<name>.json`. The edge refuses a model whose sha256 or
tensor shapes disagree with its manifest, because a model file is code-like input.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hazardwatch.contract import Hazard

MAX_MANIFEST_BYTES = 256 * 1024


class OutputKind(StrEnum):
    CLASS_SCORES = "class_scores"  # [N, C] for the whole image
    TILE_SCORES = "tile_scores"  # [N, C, Gh, Gw] or [N, Gh, Gw]: one score per image tile
    YOLO_BOXES = "yolo_boxes"  # [N, 4+C, A] (YOLOv8+) or [N, A, 5+C] (YOLOv5)
    SEGMENTATION = "segmentation"  # [N, C, H, W] per-pixel class scores


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How a BGR uint8 frame becomes the model's input tensor: resize, RGB/BGR, (x/255 - mean) / std."""

    width: int = Field(gt=0, le=4096)
    height: int = Field(gt=0, le=4096)
    color: Literal["RGB", "BGR", "GRAY"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    dtype: Literal["float32", "uint8"] = "float32"
    batch: int | None = Field(default=None, description="Fixed batch size, or None for a dynamic batch")

    @model_validator(mode="after")
    def _std_positive(self) -> InputSpec:
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as OpenCV takes a size."""
        return self.width, self.height


class OutputSpec(_Strict):
    kind: OutputKind
    classes: list[str] = Field(min_length=1, max_length=1000)
    hazard_classes: list[str] = Field(
        min_length=1, description="Classes whose score is the hazard's score (their max is taken)"
    )
    activation: Literal["none", "sigmoid", "softmax"] = "none"
    yolo_format: Literal["v8", "v5"] | None = None
    nms_iou: float = Field(default=0.45, gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> OutputSpec:
        unknown = set(self.hazard_classes) - set(self.classes)
        if unknown:
            raise ValueError(f"hazard_classes {sorted(unknown)} are not in classes")
        if self.kind == OutputKind.YOLO_BOXES and self.yolo_format is None:
            raise ValueError("yolo_boxes output needs yolo_format: v8 or v5")
        return self


class ReferenceScale(_Strict):
    """One scale of the per-cell embedding: `dim` channels on a `grid` of cells."""

    dim: int = Field(gt=0, le=512, description="Embedding channels per cell")
    grid: tuple[int, int] = Field(description="Cells (rows, columns)")

    @property
    def size(self) -> int:
        return self.dim * self.grid[0] * self.grid[1]


class WarmupThreshold(_Strict):
    """The operating threshold for a reference still learning: `looks` quiet looks or more behind it."""

    looks: int = Field(ge=2, le=10_000, description="Quiet looks the reference holds at least")
    threshold: float = Field(gt=0, lt=1, description="Operating threshold on the adapted score for such a reference")


class ZoomSpec(_Strict):
    """How a camera's horizon band is looked at closer where the camera asks for it (edge camera config
    `hazards.<hazard>.zoom`; edge/detect/zoom.py): crops of the band, each with a reference of its own."""

    # at most edge.reference.bank.MAX_PARTS: the edge loads that many crop references per camera
    crops: int = Field(default=3, ge=1, le=8, description="Crops across the band, evenly spread")
    width: float = Field(default=0.5, gt=0, le=1, description="Each crop's width, a share of the frame's")
    threshold: float = Field(gt=0, lt=1, description="A crop flags a region at this adapted score or above")

    @model_validator(mode="after")
    def _covers(self) -> ZoomSpec:
        if self.crops * self.width < 1.0:
            raise ValueError(f"reference.zoom: {self.crops} crops of width {self.width} leave parts of the band out")
        return self


class ReferenceSpec(_Strict):
    """A model that compares each look with the camera's own learnt normal (docs/models.md, edge/reference/).

    The graph gives the look's embedding, every scale's [dim, rows, cols] cells flattened and
    concatenated in `scales` order ([N, E]); the edge learns the camera's per-element mean, std and
    max of it over quiet looks and feeds them back as the second input ([N, 3E]: means, stds, maxima).
    The `adapted` output is the per-cell logit map against that reference ([N, 1, rows, cols] of
    `grid`). The main output stays the cold-start score map, used until a camera's reference is ready.
    """

    input: str = Field(default="reference", description="Graph input of the reference statistics")
    embedding_output: str = Field(default="embedding", description="Graph output of the flattened embedding")
    adapted_output: str = Field(default="adapted", description="Graph output of the logits against the reference")
    scales: list[ReferenceScale] = Field(min_length=1, max_length=4)
    grid: tuple[int, int] = Field(description="Cells (rows, columns) of the adapted score map")
    threshold: float = Field(gt=0, lt=1, description="Operating threshold on the adapted score")
    looks: int = Field(
        default=16, ge=2, le=10_000, description="Quiet looks of the references `threshold` was chosen for"
    )
    warmup: list[WarmupThreshold] = Field(
        default_factory=list,
        max_length=16,
        description="Stricter thresholds for references with fewer than `looks` looks, ascending by looks: a camera "
        "is compared with its normal from the first step on instead of running cold until its reference is ready",
    )
    zoom: ZoomSpec | None = Field(
        default=None, description="Crops of a camera's horizon band for small plumes, where the camera asks for them"
    )

    @model_validator(mode="after")
    def _warmup_ascending(self) -> ReferenceSpec:
        steps = [w.looks for w in self.warmup]
        if steps != sorted(set(steps)) or any(n >= self.looks for n in steps):
            raise ValueError(f"reference.warmup: looks must be distinct, ascending and under looks ({self.looks})")
        return self

    @property
    def size(self) -> int:
        """E: the embedding's length."""
        return sum(s.size for s in self.scales)

    @property
    def first_looks(self) -> int | None:
        """The fewest quiet looks a reference still learning needs before the model may compare with it;
        None when the model gives no warm-up steps (a reference is then used once the edge calls it ready)."""
        return self.warmup[0].looks if self.warmup else None

    def threshold_for(self, looks: int) -> float:
        """The operating threshold for a reference of `looks` quiet looks: the last warm-up step reached,
        or `threshold` from `looks` on (and for a reference the edge calls ready before any step)."""
        reached = [w.threshold for w in self.warmup if w.looks <= looks]
        return self.threshold if looks >= self.looks or not reached else reached[-1]


class DataSource(_Strict):
    name: str
    url: str = ""
    licence: str
    attribution: str = ""
    images: int | None = None


class ModelManifest(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    version: str = Field(min_length=1, max_length=64)
    hazard: Hazard
    runtime: Literal["onnx", "scene_change"] = Field(
        default="onnx",
        description="onnx: run `file` with ONNX Runtime; scene_change: the reference fallen-tree detector "
        "(edge/detect/scene_change.py), configured by `params`, with no model file",
    )
    file: str = Field(default="", description="ONNX file name, relative to the manifest (onnx runtime)")
    sha256: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    input: InputSpec
    output: OutputSpec
    threshold: float = Field(gt=0, lt=1, description="Operating threshold on the hazard score")
    precision: Literal["fp32", "int8"] = "fp32"
    provenance: list[DataSource] = Field(default_factory=list)
    metrics: dict[str, float | int | str] = Field(default_factory=dict)
    training: dict[str, str] = Field(default_factory=dict, description="command, date, code revision")
    params: dict[str, float | int | str] = Field(
        default_factory=dict, description="Runtime parameters of a non-ONNX runtime (scene_change)"
    )
    reference: ReferenceSpec | None = Field(
        default=None, description="Per-camera reference inputs and outputs, when the model learns each camera's normal"
    )
    enabled_by_default: bool = Field(
        default=True,
        description="False: a model whose measured false-alarm rate is too high to run unless a site asks for it "
        "(the reason is in notes); the edge loads it only when the config names it",
    )
    notes: str = ""

    @model_validator(mode="after")
    def _file_for_onnx(self) -> ModelManifest:
        if self.runtime == "onnx" and not (self.file and self.sha256):
            raise ValueError("an onnx model needs file and sha256")
        if self.reference is not None and (self.runtime != "onnx" or self.output.kind != OutputKind.TILE_SCORES):
            raise ValueError("reference: only an onnx model with tile_scores output can learn a camera's normal")
        return self


class ManifestError(ValueError):
    """A manifest or model file that must not be loaded; the text says which file and why."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(path: Path) -> ModelManifest:
    """Parse a manifest JSON file; the error names the file and the field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: manifest is {len(raw)} bytes, over the {MAX_MANIFEST_BYTES} limit")
    try:
        return ModelManifest.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not JSON: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ManifestError(f"{path}: {where}: {err['msg']}") from None


def manifest_path_for(model_path: Path) -> Path:
    """`models/smoke/smoke-v1.onnx` -> `models/smoke/smoke-v1.json`."""
    return model_path.with_suffix(".json")


def verify_model_file(manifest_path: Path) -> tuple[ModelManifest, Path]:
    """Read a manifest and check its model file's sha256; return both."""
    manifest = read_manifest(manifest_path)
    if manifest.runtime != "onnx":  # nothing to hash: the detector is code configured by the manifest
        return manifest, manifest_path
    model_path = (manifest_path.parent / manifest.file).resolve()
    if not model_path.is_file():
        raise ManifestError(f"{manifest_path}: model file {model_path} does not exist")
    digest = sha256_file(model_path)
    if digest != manifest.sha256:
        raise ManifestError(
            f"{model_path}: sha256 {digest[:12]}... does not match the manifest's {manifest.sha256[:12]}...; "
            "the file is corrupt or not the model the manifest describes"
        )
    return manifest, model_path
