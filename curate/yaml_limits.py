"""Bounds on what a YAML text from a stranger may make: specs, experiments and eval-set files.

A safe loader runs no code, but YAML's anchors and aliases still let a few hundred bytes stand
for billions of values (``b: [*a, *a, …]`` nine times over), and an alias inside its own anchor
makes a value that contains itself. Every reader of the parsed data (duplicate-key check,
validation, fingerprints) would then walk forever or overflow Python's stack. So the composed
node graph is measured first, once per node, without recursion: its size with every alias
expanded, and any alias that refers to a node it sits in.
"""

from __future__ import annotations

from typing import Any

import yaml

# A spec is at most thousands of values; a million expanded values is far past any real one and
# still checked and validated in about a second.
MAX_VALUES = 1_000_000
# Pure-Python YAML parses ~0.2 MB/s of a many-step spec: the text is bounded before it is parsed.
# The largest spec in specs/ is a few kB; an experiment with hundreds of variants is well under this.
MAX_SPEC_BYTES = 1 << 20


class YamlTooLarge(ValueError):
    """The text expands past MAX_VALUES, or an alias refers to a node that contains it."""

    def __init__(self, message: str, line: int | None, hint: str):
        super().__init__(message)
        self.line = line
        self.hint = hint


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _line(node: yaml.Node) -> int | None:
    mark: Any = getattr(node, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def check_node(root: yaml.Node, limit: int = MAX_VALUES) -> int:
    """The number of values ``root`` stands for with aliases expanded; raises YamlTooLarge past
    ``limit`` or on a node that contains itself. Each node is visited once (sizes memoized by
    identity: an alias is the very node its anchor names)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > limit:
                raise YamlTooLarge(
                    f"the YAML holds more than {limit:,} values (aliases, *name, counted as expanded)",
                    _line(node), "write the values out, or keep long lists in a file the spec names")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlTooLarge("an alias (*name) refers to a value that contains it, which has no end",
                               _line(node), "an anchor (&name) cannot be used inside its own value")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]
