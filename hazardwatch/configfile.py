"""Load YAML config files into strict pydantic models with errors that point at the file and line.

Both services use this one loader, so every config error reads the same:
`configs/edge.yaml:12 cameras.0.source: value is not a valid URL`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 32
# Nodes after expanding aliases. A 1 MiB file without aliases holds at most ~520k nodes; aliases may
# repeat shared settings but must not multiply a small file into a huge document ("billion laughs").
MAX_NODES = 1_000_000

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    key: str
    line: int | None
    reason: str


class ConfigError(Exception):
    """Every problem found in one config file, each with its key path and line."""

    def __init__(self, path: Path | str, problems: list[Problem]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for p in self.problems:
            where = f"{self.path}:{p.line}" if p.line else self.path
            lines.append(f"{where} {p.key or '(top level)'}: {p.reason}")
        return "\n".join(lines)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:  # `? [a, b]` keys: legal YAML, never a config key
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _key_lines(node: yaml.Node, path: tuple = (), out: dict | None = None, depth: int = 0) -> dict:
    out = {} if out is None else out
    if depth > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            child = (*path, k.value)
            out[child] = k.start_mark.line + 1
            _key_lines(v, child, out, depth + 1)
            out[child] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _key_lines(item, (*path, str(i)), out, depth + 1)
    return out


def _check_depth(text: str) -> None:
    """Bound nesting from the parser's event stream (iterative), before the recursive composer runs."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise ValueError(f"nesting deeper than {MAX_DEPTH} levels (line {line})")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _expanded_size(node: yaml.Node) -> int:
    """Nodes the document has once every alias is expanded, counted without expanding them.

    Aliases share node objects, so sizes are memoised per node; a node reached again while it is being
    counted is a recursive alias, which no config needs.
    """
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in busy:
            raise ValueError(f"recursive alias at line {n.start_mark.line + 1}")
        busy.add(key)
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in n.value)
        else:
            total = 1
        busy.discard(key)
        sizes[key] = min(total, MAX_NODES + 1)
        return sizes[key]

    return size(node)


def _line_for(lines: dict, loc: tuple) -> int | None:
    path = tuple(str(p) for p in loc)
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)


def read_yaml(path: Path) -> tuple[dict, dict]:
    """Parse one YAML file; return the document and a key-path -> line map."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(path, [Problem("", None, f"file is {size} bytes, over the {MAX_CONFIG_BYTES} limit")])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [Problem("", None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [Problem("", None, f"cannot read: {exc}")]) from None
    try:
        _check_depth(text)
        loader = _LineLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node) > MAX_NODES:
                raise ValueError(f"the document expands to over {MAX_NODES} nodes (aliases repeated too often?)")
            doc = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        lines = _key_lines(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [Problem("", line, f"invalid YAML: {reason}")]) from None
    except ValueError as exc:
        raise ConfigError(path, [Problem("", None, str(exc))]) from None
    except RecursionError:  # a last line of defence; _check_depth should have caught it
        raise ConfigError(path, [Problem("", None, "nesting too deep")]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(path, [Problem("", 1, "the top level must be a mapping of keys")])
    return doc, lines


def load_config(path: Path | str, model: type[Model]) -> Model:
    """Read and validate `path` against `model`; raise ConfigError listing every problem."""
    path = Path(path)
    doc, lines = read_yaml(path)
    try:
        return model.model_validate(doc, context={"config_dir": path.parent.resolve()})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"]
            key = ".".join(str(p) for p in loc)
            reason = err["msg"]
            if err["type"] == "extra_forbidden":
                reason = "unknown key (check spelling; see the JSON Schema in configs/schemas/)"
            problems.append(Problem(key, _line_for(lines, loc), reason))
        raise ConfigError(path, problems) from None


def check_found(path: Path | str, found: list[tuple[tuple[str | int, ...], str]]) -> None:
    """Raise a ConfigError with file:line for problems found after validation (files named by a valid config)."""
    if not found:
        return
    _, lines = read_yaml(Path(path))
    problems = [Problem(".".join(str(p) for p in loc), _line_for(lines, loc), reason) for loc, reason in found]
    raise ConfigError(path, problems)


def resolve_secret(inline: str | None, env: str | None, file: Path | None, what: str) -> str | None:
    """One secret from exactly one of: an environment variable, a file, or an inline value."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        return value
    if file:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{what}: cannot read {file}: {exc.strerror}") from None
    return inline
