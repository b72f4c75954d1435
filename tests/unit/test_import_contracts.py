"""The layers nothing else checks: which package may import which, read from the source.

Why a test and not a convention: the edge box has no central code and central's install has no
OpenCV or ONNX Runtime, so one stray import breaks a deployment, not a unit test. Every import
statement is read with `ast` (also the ones inside functions), so a lazy import counts too.
"""

from __future__ import annotations

import ast
import re
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
        (("central/services", "central/warnings"), ("hazardwatch.central.api",), "api -> services -> store"),
        (("central/services",), ("hazardwatch.central.ingest",), "ingest calls the services, not the reverse"),
        (
            ("hazardwatch/kernel",),
            ("hazardwatch.edge", "hazardwatch.central", "hazardwatch.models", "hazardwatch.demo"),
            "the shared kernel sits below both services",
        ),
        (("edge", "central", "models", "hazardwatch"), ("tests", "support"), "the shipped code never needs the tests"),
        (
            ("edge", "central", "models", "hazardwatch/kernel", "hazardwatch/contract"),
            ("hazardwatch.harness",),
            "the services never run on the harness that runs them",
        ),
        (("bench",), ("tests", "support"), "a bench runs on the shipped harness, never the tests"),
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


# The one API module that opens transactions (ApiContext.run); every other reaches the store through services.
API_STORE_GATE = "central/api/context.py"
SQL = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|WITH)\s")  # the code base writes SQL upper case
TX_CALLS = ("execute", "executemany", "one", "scalar")


def _api_store_use(path: Path, module: str | None = None) -> list[str]:
    """What in one API module touches the store directly: store imports, SQL text, calls on a `tx`."""
    found = [
        f"imports {n}"
        for n in sorted(_imports(path, module))
        if n.startswith(("hazardwatch.central.store", "hazardwatch.central.notify.queue", "hazardwatch.central.ingest"))
    ]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            found.append(f"line {node.lineno}: SQL {node.value[:40]!r}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in TX_CALLS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "tx"
        ):
            found.append(f"line {node.lineno}: tx.{node.func.attr}(...)")
    return found


def test_api_handlers_reach_the_store_only_through_services() -> None:
    """No SQL in handlers: API modules neither import the store (or the queue and ingest that write it)
    nor hold SQL or call a transaction; the context alone opens transactions for the services."""
    found = {
        str(path.relative_to(ROOT)): use
        for path in _files("central/api")
        if str(path.relative_to(ROOT)) != API_STORE_GATE and (use := _api_store_use(path))
    }
    assert found == {}
    assert _api_store_use(ROOT / API_STORE_GATE) == [
        "imports hazardwatch.central.store",
        "imports hazardwatch.central.store.Database",
    ]


def test_the_api_checker_sees_sql_and_transactions(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from hazardwatch.central.store import Tx\ndef h(tx):\n    return tx.one('SELECT 1 FROM incidents')\n"
    )
    assert _api_store_use(probe, "hazardwatch.central.api.probe") == [
        "imports hazardwatch.central.store",
        "imports hazardwatch.central.store.Tx",
        "line 3: tx.one(...)",
        "line 3: SQL 'SELECT 1 FROM incidents'",
    ]
