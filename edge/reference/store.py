"""Reference persistence: one .npz file per camera beside the outbox, written atomically.

Why per camera and atomic: a power cut mid-write must cost at most that camera's latest changes,
never the file (write to a temporary name, fsync, rename). A file that cannot be read (truncated,
from another version, for another camera) is reported and set aside; the camera then learns again
from scratch and runs cold meanwhile, which is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np

from hazardwatch.contract import Hazard
from hazardwatch.edge.reference.bank import MAX_PARTS, MODES, CameraReferences, ReferenceBank, part_id
from hazardwatch.edge.reference.cells import CellReference

FORMAT = 1


def _file_for(root: Path, camera_id: str) -> Path:
    """Camera ids may be '.' or '..': the file name is a digest, the id is kept inside."""
    return root / f"camera-{hashlib.sha256(camera_id.encode()).hexdigest()[:20]}.npz"


def _version(entries: list[tuple[Hazard, CameraReferences]]) -> tuple[object, ...]:
    """What a camera's file holds: unchanged means nothing to write."""
    return tuple(
        (h.value, e.model_key, e.view, m, r.looks, r.absorbed, r.updated_at)
        for h, e in entries
        for m, r in sorted(e.modes.items())
    )


class ReferenceStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # camera -> what its file holds, so a quiet camera costs no I/O
        self._written: dict[str, tuple[object, ...]] = {}

    def save(self, bank: ReferenceBank) -> int:
        """Write the references of every camera that changed since its last save; returns the files written."""
        by_camera: dict[str, list[tuple[Hazard, CameraReferences]]] = {}
        for cam, hazard, entry in bank.entries():
            if entry.modes:
                by_camera.setdefault(cam, []).append((hazard, entry))
        self.root.mkdir(parents=True, exist_ok=True)
        written = 0
        for cam, entries in sorted(by_camera.items()):
            version = _version(entries)
            if self._written.get(cam) == version:
                continue
            arrays: dict[str, np.ndarray] = {}
            hazards: dict[str, object] = {}
            index = {"format": FORMAT, "camera_id": cam, "hazards": hazards}
            for hazard, entry in entries:
                hazards[hazard.value] = {
                    "model_key": entry.model_key,
                    "view": entry.view,
                    "modes": sorted(entry.modes),
                }
                for mode, ref in entry.modes.items():
                    arrays.update(ref.to_arrays(f"{hazard.value}.{mode}."))
            arrays["index"] = np.frombuffer(json.dumps(index).encode(), np.uint8)
            path = _file_for(self.root, cam)
            tmp = path.with_suffix(".tmp")
            try:
                with tmp.open("wb") as f:
                    np.savez(f, **cast("dict[str, Any]", arrays))  # names, not savez's own options
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:  # a full disk: the half file must not keep the space the outbox needs
                tmp.unlink(missing_ok=True)
                raise
            self._written[cam] = version
            written += 1
        return written

    def load(self, bank: ReferenceBank, camera_ids: set[str]) -> list[str]:
        """Read the references of the configured cameras (and their zoom crops) into the bank; returns one
        line per problem."""
        problems: list[str] = []
        if not self.root.is_dir():
            return problems
        # each camera's file, then its zoom crops' (a crop's reference is keyed like a camera of its own)
        keys = [k for c in sorted(camera_ids) for k in (c, *(part_id(c, n) for n in range(MAX_PARTS)))]
        for cam in keys:
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
                self._written[cam] = _version([(h, e) for c, h, e in bank.entries() if c == cam and e.modes])
            except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
                problems.append(f"{path}: camera {cam}: unreadable reference ({exc}); it learns again")
                bank.reset(cam)
                path.replace(path.with_suffix(".bad"))
        return problems
