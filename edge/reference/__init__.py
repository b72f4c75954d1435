"""Each camera's learnt normal: per-cell reference statistics that reference-aware models compare a look with."""

from hazardwatch.edge.reference.bank import (
    CameraReferences,
    ReferenceBank,
    ReferencePolicy,
    ReferenceState,
    part_id,
)
from hazardwatch.edge.reference.cells import CellReference, boxes_to_cells, embedding_mask

__all__ = [
    "CameraReferences",
    "CellReference",
    "ReferenceBank",
    "ReferencePolicy",
    "ReferenceState",
    "boxes_to_cells",
    "embedding_mask",
    "part_id",
]
