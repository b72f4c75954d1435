"""The README's second command runs the whole test suite on a fresh machine: one line, and it is .ci/run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

REPO = Path(__file__).resolve().parents[2]
PYTEST = ".venv/bin/python -m pytest -q -n 2 --dist worksteal"


def readme_commands() -> list[str]:
    """The command lines of the README's "Two commands" block (comments dropped)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Two commands\n.*?```bash\n(.*?)```", text, re.S)
    assert block, "README has a `## Two commands` section with a bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_test_command_is_one_line_that_installs_and_runs_everything():
    commands = readme_commands()
    assert len(commands) == 2, commands
    words = shlex.split(commands[1])
    assert words == ["bash", ".ci/run"], f"the test command must be one self-contained line, not {commands[1]!r}"


def test_ci_run_installs_then_runs_the_readme_pytest_command_itself():
    lines = [
        line.strip()
        for line in (REPO / ".ci/run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[-1] == PYTEST, "the last thing .ci/run does is the README's pytest command"
    assert not any(".ci/run" in line or "$0" in line for line in lines), ".ci/run must not call itself"
    setup = lines.index(".ci/install-system.sh")
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    assert installs and setup < min(installs) < lines.index(PYTEST)


def test_readme_says_how_long_and_what_the_data_tests_read():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"about\s+\d+\s+minutes\s+on\s+\d+\s+cores", text)
    for folder in ("smoke-hpwren/", "flood-nc12/", "flood-floodx/", "media-furg-fire/", "media-intel-road/"):
        assert f"`{folder}" in text, f"README does not say what ../shared/data/{folder} holds"
