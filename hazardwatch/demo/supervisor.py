"""The children of one demo run: started in order, stopped newest first, their logs kept on failure."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from hazardwatch.procs import Child, ChildError

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class DemoError(Exception):
    """A problem the user can fix; the text is one sentence saying what to do."""


@dataclass
class Demo:
    """Everything one demo run started, so that stopping it can undo all of it."""

    workdir: Path
    keep_workdir: bool
    out: TextIO
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        """Start a child in its own process group, stopped by the kernel if the demo dies."""
        out_path, log_path = self.workdir / f"{name}.out", self.workdir / f"{name}.log"
        child = Child(name, argv, out_path, log_path, self.workdir, env or {}, own_group=True, die_with_parent=True)
        self.children.append(child.start())
        return child

    def wait_url(self, child: Child, timeout: float = START_TIMEOUT_S) -> str:
        """Wait for the 'http://...' line a hazardwatch process prints once it serves."""
        try:
            return child.wait_url(timeout)
        except ChildError:
            if child.alive():
                raise DemoError(
                    f"{child.name} did not start within {timeout:.0f} s; read its log in {child.log_path}"
                ) from None
            raise DemoError(
                f"{child.name} exited with code {child.returncode} while starting; "
                f"its log is in {child.log_path}:\n{child.log_tail()}"
            ) from None

    def stop(self) -> None:
        """Stop the children newest first (edge, central, broker), then remove the temp folder."""
        for child in reversed(self.children):
            child.stop(STOP_TIMEOUT_S)
        self.children.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
