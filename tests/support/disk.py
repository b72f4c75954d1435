"""A small filesystem a test may fill: a tmpfs mounted for the test (skips where mounting is not allowed)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if run.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({run.stderr.decode().strip() or 'mount failed'}); "
            "the disk-full test needs a filesystem it can fill without harming the machine"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
