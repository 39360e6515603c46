"""Config files read as YAML with bounds on size, nesting and alias expansion, so that a hostile file
is refused at once, with one line naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.config.messages import MAX_ERROR_CHARS, cut, short_repr
from pipeline.errors import ConfigError

# Bounds on what a config file may cost before it is refused: configs are a few hundred bytes and a
# few dozen values, so these leave room for any real one and refuse a hostile one at once.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_NODES = 10_000  # scalars, sequences and mappings, counted with every alias expanded
MAX_YAML_DEPTH = 64


class YamlRefused(yaml.YAMLError):
    """A YAML document refused for its shape (alias expansion, nesting), not for its syntax."""


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a document whose aliases expand past :data:`MAX_YAML_NODES`
    nodes, nest deeper than :data:`MAX_YAML_DEPTH`, or refer to themselves.

    PyYAML builds an alias as a shared reference, so a 300-byte "billion laughs" loads in
    milliseconds; the cost comes later, from everything that walks the value (validation, repr):
    91 s and 6.5 GB measured. The expanded size is counted on the composed node graph, each
    distinct node once, before any Python object is constructed. Nodes and depth are also counted
    while composing, so a dense or deep file stops parsing at the bound, not at its end (PyYAML
    composes recursively: 300 levels overflow the stack).
    """

    composed = 0  # nodes composed so far, aliases counted once
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.composed += 1
        if self.composed > MAX_YAML_NODES:
            raise YamlRefused(f"more than {MAX_YAML_NODES:,} values; a config has a few dozen")
        if self._depth > MAX_YAML_DEPTH:
            raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels ({_where(self.peek_event())})")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in ``root`` with every alias expanded; raises :class:`YamlRefused` past the bounds."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise YamlRefused(f"an alias refers to a node that contains it ({_where(node)})")
        if depth > MAX_YAML_DEPTH:
            raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels ({_where(node)})")
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            open_.add(key)
            children = (
                node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            )
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_YAML_NODES:
                    raise YamlRefused(
                        f"its aliases expand to more than {MAX_YAML_NODES:,} values (an alias bomb?); "
                        "a config has a few dozen"
                    )
            open_.discard(key)
        sizes[key] = total
        return total

    return size(root, 0)


def _where(node: yaml.Node | yaml.Event) -> str:
    """``line L, column C`` of ``node``: one line, unlike PyYAML's marks with their snippet."""
    mark = node.start_mark
    if mark is None:  # PyYAML sets marks on everything it parses; a hand-made node may lack one
        return "an unknown line"
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error on one line: its own message quotes the offending line with a caret under it."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        what = "; ".join(str(p) for p in (err.context, err.problem) if p)
        mark = err.problem_mark
        return f"{what} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(err).split())


def load_yaml(path: str | Path) -> Any:
    """The YAML document in ``path``, read with the bounds above; refusals raise :class:`ConfigError`
    naming the file."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    if not path.is_file():  # a FIFO would block the read forever, a device never end
        raise ConfigError(f"{path}: not a regular file, so not a config file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {st.st_size} bytes is too large for a config file (at most {MAX_CONFIG_BYTES})"
        )
    with path.open("rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)  # the file may have grown since stat
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: too large for a config file (more than {MAX_CONFIG_BYTES} bytes)")
    try:
        return yaml.load(raw, Loader=BoundedLoader)  # a SafeLoader: no tags run code
    except YamlRefused as err:
        raise ConfigError(cut(f"{path}: refused: {err}", MAX_ERROR_CHARS)) from None
    except yaml.YAMLError as err:
        raise ConfigError(cut(f"{path}: not valid YAML: {_yaml_problem(err)}", MAX_ERROR_CHARS)) from None


def yaml_section(path: str | Path, section: str) -> dict[str, Any]:
    """The options in ``path``: its ``section`` mapping if it has one, else the whole mapping."""
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names, got {type(data).__name__}")
    data = data.get(section, data)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {section}: expected a mapping of option names, got {type(data).__name__}")
    keys = [k for k in data if not isinstance(k, str)]
    if keys:
        raise ConfigError(f"{path}: option names must be strings, but got {short_repr(keys[0])}")
    return data
