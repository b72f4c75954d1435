"""Reference persistence: one .npz file per camera beside the outbox, written atomically.

Why per camera and atomic: a power cut mid-write must cost at most that camera's latest changes,
never the file (write to a temporary name, fsync, rename). A file that cannot be read (truncated,
from another version, for another camera) is reported and set aside; the camera then learns again
from scratch and runs cold meanwhile, which is safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from hazardwatch.contract import Hazard
from hazardwatch.edge.reference.bank import MODES, CameraReferences, ReferenceBank
from hazardwatch.edge.reference.cells import CellReference

log = logging.getLogger(__name__)

FORMAT = 1


def _file_for(root: Path, camera_id: str) -> Path:
    """Camera ids may be '.' or '..': the file name is a digest, the id is kept inside."""
    return root / f"camera-{hashlib.sha256(camera_id.encode()).hexdigest()[:20]}.npz"


class ReferenceStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(self, bank: ReferenceBank, camera_ids: list[str] | None = None) -> int:
        """Write every camera's references (or those listed); returns the number of files written."""
        by_camera: dict[str, list[tuple[Hazard, CameraReferences]]] = {}
        for cam, hazard, entry in bank.entries():
            if entry.modes:
                by_camera.setdefault(cam, []).append((hazard, entry))
        self.root.mkdir(parents=True, exist_ok=True)
        written = 0
        for cam in camera_ids if camera_ids is not None else sorted(by_camera):
            entries = by_camera.get(cam)
            if not entries:
                continue
            arrays: dict[str, np.ndarray] = {}
            index = {"format": FORMAT, "camera_id": cam, "hazards": {}}
            for hazard, entry in entries:
                index["hazards"][hazard.value] = {
                    "model_key": entry.model_key,
                    "view": entry.view,
                    "modes": sorted(entry.modes),
                }
                for mode, ref in entry.modes.items():
                    arrays.update(ref.to_arrays(f"{hazard.value}.{mode}."))
            arrays["index"] = np.frombuffer(json.dumps(index).encode(), np.uint8)
            path = _file_for(self.root, cam)
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            written += 1
        return written

    def load(self, bank: ReferenceBank, camera_ids: set[str]) -> list[str]:
        """Read the references of the configured cameras into the bank; returns one line per problem."""
        problems: list[str] = []
        if not self.root.is_dir():
            return problems
        for cam in sorted(camera_ids):
            path = _file_for(self.root, cam)
            if not path.is_file():
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                index = json.loads(arrays.pop("index").tobytes())
                if index.get("format") != FORMAT or index.get("camera_id") != cam:
                    raise ValueError(f"format {index.get('format')} for camera {index.get('camera_id')!r}")
                for hazard_name, spec in index["hazards"].items():
                    entry = CameraReferences(str(spec["model_key"]), int(spec["view"]))
                    for mode in spec["modes"]:
                        if mode not in MODES:
                            raise ValueError(f"unknown light mode {mode!r}")
                        entry.modes[mode] = CellReference.from_arrays(arrays, f"{hazard_name}.{mode}.")
                    bank.put(cam, Hazard(hazard_name), entry)
            except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
                problems.append(f"{path}: camera {cam}: unreadable reference ({exc}); it learns again")
                bank.reset(cam)
                path.replace(path.with_suffix(".bad"))
        return problems
