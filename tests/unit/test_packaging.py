"""Every package folder is listed in pyproject.toml (find() cannot follow the namespace mapping)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick
ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_installed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = {v: k for k, v in cfg["package-dir"].items()}
    found = set()
    for top, name in mapping.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == listed


def test_central_side_does_not_import_the_edge_runtime():
    import subprocess
    import sys

    code = (
        "import sys, hazardwatch.contract, hazardwatch.manifest, hazardwatch.cli; "
        "bad = [m for m in ('cv2', 'onnxruntime', 'av', 'hazardwatch.edge') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
