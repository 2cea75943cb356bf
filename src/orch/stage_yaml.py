"""Reading one stage file: bytes -> UTF-8 -> YAML -> a mapping, or a ConfigError naming
`file:line:column`.

This module owns what orch accepts as YAML: safe tags only, no duplicate keys, merge keys
(`<<: *defaults`), plain (hashable) keys, bounded size and nesting, and a clear message for
everything else, never a traceback. It does not know the stage schema (orch.config does).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

from orch.errors import ConfigError

MAX_BYTES = 1024 * 1024
"""Largest stage file orch reads (a real one is a few KB)."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (orch's schema needs 6)."""
MERGE_TAG = "tag:yaml.org,2002:merge"
FIX_SYNTAX = "Fix the file's syntax (indentation, quotes, colons) and run the command again."


class _StageLoader(yaml.SafeLoader):
    """SafeLoader with limits: depth, no recursive aliases, no duplicate or unhashable keys,
    and constructor failures (a 5000-digit integer, month 13) as marked YAML errors."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open_anchors: set[str] = set()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent) and event.anchor in self._open_anchors:
            raise ComposerError(None, None, f"alias *{event.anchor} refers to the node that contains it",
                                event.start_mark)
        anchor = getattr(event, "anchor", None) if not isinstance(event, AliasEvent) else None
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        if anchor:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor:
                self._open_anchors.discard(anchor)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError, TypeError) as exc:
            kind = node.tag.rsplit(":", 1)[-1]
            if kind == "int" and "digits" in str(exc):
                problem = f"an integer too long to read ({len(str(node.value))} characters)"
            else:
                problem = f"cannot read this {kind} value: {exc}"
            raise ConstructorError(None, None, problem, node.start_mark) from None


def _construct_mapping(loader: _StageLoader, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue  # `<<:` merges another mapping's keys; the mapping's own keys win
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConstructorError(
                "while reading a mapping", node.start_mark,
                f"found a {type(key).__name__} as a key; keys must be plain names", key_node.start_mark,
            ) from None
        if key in seen:
            raise ConstructorError(
                "while reading a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)  # flattens `<<` first


_StageLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"{path}: not a regular file.", hint="A stage file must be a YAML file.")
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror}).") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: over {MAX_BYTES // 1024} KB; a stage file is a few KB of settings.")
    return data


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}:{column}: not valid UTF-8 (byte 0x{data[exc.start]:02x}).",
            hint="Save the file as UTF-8 (stage files are UTF-8 text).",
        ) from None


def read_mapping(path: Path) -> dict[str, Any]:
    """Parse one stage file into a mapping; an empty file is an empty mapping.

    Raises ConfigError naming `path` (and line:column where YAML knows it) for a file that is
    unreadable, not a regular file, over MAX_BYTES, not UTF-8, not valid or not safe YAML,
    nested deeper than MAX_DEPTH, or not a mapping at the top.
    """
    text = _decode(path, _read_bytes(path))
    try:
        data = yaml.load(text, Loader=_StageLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or "invalid YAML"
        raise ConfigError(f"{where}: malformed YAML: {problem}.", hint=FIX_SYNTAX) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}.", hint=FIX_SYNTAX) from None
    except RecursionError:  # a path MAX_DEPTH does not cover; never a traceback
        raise ConfigError(f"{path}: nested too deeply to read.", hint=FIX_SYNTAX) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, found {type(data).__name__}."
        )
    return data
