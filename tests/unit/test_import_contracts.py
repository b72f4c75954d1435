"""The layers nothing else checks (issue 15.5): which package may import which, read from the source.

Why a test and not a convention: the edge box has no central code and central's install has no
OpenCV or ONNX Runtime, so one stray import breaks a deployment, not a unit test. Every import
statement is read with `ast` (also the ones inside functions), so a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"edge": "hazardwatch.edge", "central": "hazardwatch.central", "models": "hazardwatch.models"}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in PACKAGES:
        parts = [*PACKAGES[parts[0]].split("."), *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Absolute names of everything the file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = (module or _module(path)).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _violations(folders: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in _files(*folders):
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(
    ("folders", "forbidden", "why"),
    [
        (("edge",), ("hazardwatch.central",), "the edge box installs no central code"),
        (
            ("central",),
            ("hazardwatch.edge", "hazardwatch.models"),
            "central's install has no OpenCV, ONNX Runtime or torch",
        ),
        (
            ("hazardwatch/contract",),
            (
                "hazardwatch.edge",
                "hazardwatch.central",
                "hazardwatch.models",
                "hazardwatch.manifest",
                "hazardwatch.demo",
            ),
            "third parties read the contract alone",
        ),
        (
            ("central/store",),
            ("hazardwatch.central.services", "hazardwatch.central.api", "hazardwatch.central.ingest"),
            "api -> services -> store",
        ),
        (("central/services",), ("hazardwatch.central.api",), "api -> services -> store"),
        (
            ("hazardwatch/kernel",),
            ("hazardwatch.edge", "hazardwatch.central", "hazardwatch.models", "hazardwatch.demo"),
            "the shared kernel sits below both services",
        ),
        (("edge", "central", "models", "hazardwatch"), ("tests", "support"), "the shipped code never needs the tests"),
    ],
)
def test_layer_imports(folders: tuple[str, ...], forbidden: tuple[str, ...], why: str) -> None:
    assert _files(*folders), folders
    assert _violations(folders, forbidden) == [], why


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function is found, a relative one resolved."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from hazardwatch.central import config\n    from .detect import decode\n")
    names = _imports(probe, "hazardwatch.edge.probe")
    assert {"hazardwatch.central.config", "hazardwatch.edge.detect.decode"} <= names
