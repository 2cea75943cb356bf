"""Does the handler's file define the function the stage names? Answered statically.

For Python, the module's syntax tree (ast) lists what the module binds at its top level; for
Node.js, tree-sitter's JavaScript parser lists what the file exports (CommonJS and ES
modules). This module never imports or runs user code, and never guesses: when a file's
exports cannot be determined statically (`from x import *`, a module `__getattr__`,
`module.exports = build()`, `export * from`, ...), the answer is "unknown" and orch does
not fail. It only reads the one file it is given.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from pathlib import Path

# Calls that can bind module names out of sight of the syntax tree.
_PY_DYNAMIC_CALLS = frozenset({"globals", "vars", "exec", "setattr", "__import__", "locals"})


@dataclass(frozen=True)
class Exports:
    """What a file defines for callers: `names`, and whether that list is `complete`."""

    names: frozenset[str] = frozenset()
    complete: bool = True
    why_unknown: str = ""

    def has(self, name: str) -> bool | None:
        """True/False when known; None when the file's exports cannot be determined statically."""
        if name in self.names:
            return True
        return False if self.complete else None

    def close_matches(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, sorted(self.names), n=3)


@dataclass
class _Collector:
    names: set[str] = field(default_factory=set)
    unknown: str = ""

    def give_up(self, why: str) -> None:
        self.unknown = self.unknown or why

    def result(self) -> Exports:
        return Exports(frozenset(self.names), not self.unknown, self.unknown)


# ---------------------------------------------------------------------------- Python


def python_exports(source: str) -> Exports:
    """Names a Python module binds at import: def, async def, class, assignment, import (as)."""
    found = _Collector()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        return Exports(frozenset(), False, f"orch's Python could not parse it ({exc.__class__.__name__})")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _PY_DYNAMIC_CALLS:
            found.give_up(f"it calls {node.func.id}()")
        elif isinstance(node, ast.Global):
            found.names.update(node.names)  # a function may bind these at import time
    _python_block(tree.body, found)
    if "__getattr__" in found.names:
        found.give_up("it defines a module __getattr__")
    return found.result()


def _python_block(body: list[ast.stmt], found: _Collector) -> None:
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.names.add(stmt.name)
            continue
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                _python_target(target, found)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            if not isinstance(stmt, ast.AnnAssign) or stmt.value is not None:
                _python_target(stmt.target, found)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                found.names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if alias.name == "*":
                    found.give_up(f"it imports * from {stmt.module or '.'}")
                else:
                    found.names.add(alias.asname or alias.name)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            _python_target(stmt.target, found)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    _python_target(item.optional_vars, found)
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                for node in ast.walk(case.pattern):
                    name = getattr(node, "name", None)
                    if isinstance(name, str):
                        found.names.add(name)
        for node in ast.walk(stmt):
            if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                found.names.add(node.target.id)
        for attr in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, attr, None)
            if isinstance(inner, list) and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                _python_block(inner, found)
        for handler in getattr(stmt, "handlers", ()) or ():
            if handler.name:
                found.names.add(handler.name)
            _python_block(handler.body, found)
        for case in getattr(stmt, "cases", ()) or ():
            _python_block(case.body, found)


def _python_target(target: ast.expr, found: _Collector) -> None:
    if isinstance(target, ast.Name):
        found.names.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _python_target(element, found)
    elif isinstance(target, ast.Starred):
        _python_target(target.value, found)


# ---------------------------------------------------------------------------- JavaScript


def javascript_exports(source: bytes) -> Exports:
    """Names a Node.js file exports: CommonJS (`exports.x =`, `module.exports = {...}`,
    `module.exports.x =`, `Object.defineProperty(exports, "x", ...)`) and ES modules
    (`export function/async function/class/const/let/var x`, `export { a as x }`,
    `export default`). Anything else that touches the exports makes the answer unknown."""
    import tree_sitter_javascript
    from tree_sitter import Language, Parser

    tree = Parser(Language(tree_sitter_javascript.language())).parse(source)
    found = _Collector()
    if tree.root_node.has_error:
        found.give_up("tree-sitter could not parse all of it")
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.children))
        if node.type == "export_statement":
            _esm_export(node, found)
        elif node.type == "identifier" and _text(node) == "exports":
            _cjs_use(node, node, found)
        elif node.type == "member_expression" and _is_module_exports(node):
            _cjs_use(node, node, found)
    return found.result()


def _text(node) -> str:  # noqa: ANN001 - a tree_sitter.Node
    return node.text.decode("utf-8", "replace") if node.text is not None else ""


def _string_value(node) -> str | None:  # noqa: ANN001
    if node is not None and node.type == "string":
        return "".join(_text(c) for c in node.children if c.type == "string_fragment")
    return None


def _is_module_exports(node) -> bool:  # noqa: ANN001
    obj, prop = node.child_by_field_name("object"), node.child_by_field_name("property")
    return obj is not None and prop is not None and _text(obj) == "module" and _text(prop) == "exports"


def _cjs_use(exports_node, node, found: _Collector) -> None:  # noqa: ANN001
    """One use of `exports` / `module.exports`: a name it gains, or why the names are unknown."""
    parent = exports_node.parent
    if exports_node.type == "identifier" and parent is not None and parent.type == "member_expression" \
            and _is_module_exports(parent):
        return  # `module.exports`: handled as its own member_expression
    if parent is None:
        return
    if parent.type in ("member_expression", "subscript_expression") and \
            parent.child_by_field_name("object") == exports_node:
        grand = parent.parent
        if parent.type == "member_expression":
            name = _text(parent.child_by_field_name("property"))
        else:
            name = _string_value(parent.child_by_field_name("index"))
        if grand is not None and grand.type == "assignment_expression" and grand.child_by_field_name("left") == parent:
            if name is None:
                found.give_up("it assigns exports[...] with a computed key")
            else:
                found.names.add(name)
        return  # a read such as `exports.x(...)` adds nothing
    if parent.type == "assignment_expression" and parent.child_by_field_name("left") == exports_node:
        right = parent.child_by_field_name("right")
        while right is not None and right.type == "assignment_expression":  # exports = module.exports = {...}
            right = right.child_by_field_name("right")
        if right is None or right.type != "object":
            if right is not None and right.type in ("function_expression", "arrow_function", "class"):
                return  # the module is a function: it exports no named properties by itself
            found.give_up("it sets module.exports to a value orch cannot read statically")
            return
        for prop in right.named_children:
            if prop.type == "shorthand_property_identifier":
                found.names.add(_text(prop))
            elif prop.type in ("pair", "method_definition"):
                key = prop.child_by_field_name("key") or prop.child_by_field_name("name")
                name = _string_value(key) if key is not None and key.type == "string" else (
                    _text(key) if key is not None and key.type == "property_identifier" else None)
                if name is None:
                    found.give_up("module.exports has a computed key")
                else:
                    found.names.add(name)
            elif prop.type != "comment":
                found.give_up("module.exports spreads another object")
        return
    if parent.type == "arguments":
        call = parent.parent
        function = call.child_by_field_name("function") if call is not None else None
        args = [a for a in parent.named_children if a.type != "comment"]
        if function is not None and _text(function) == "Object.defineProperty" and args and args[0] == exports_node:
            name = _string_value(args[1]) if len(args) > 1 else None
            if name is None:
                found.give_up("it defines an export with a computed name")
            elif name != "__esModule":
                found.names.add(name)
            return
        found.give_up(f"it hands the exports object to {_text(function) if function is not None else 'a call'}")
        return
    found.give_up("it uses the exports object in a way orch cannot read statically")


def _esm_export(node, found: _Collector) -> None:  # noqa: ANN001
    if node.child_by_field_name("value") is not None or any(c.type == "default" for c in node.children):
        found.names.add("default")  # `export default function handler` exports "default" only
        return
    declaration = node.child_by_field_name("declaration")
    if declaration is not None:
        if declaration.type in ("lexical_declaration", "variable_declaration"):
            for declarator in declaration.named_children:
                if declarator.type != "variable_declarator":
                    continue
                name = declarator.child_by_field_name("name")
                if name is not None and name.type == "identifier":
                    found.names.add(_text(name))
                else:
                    found.give_up("it exports a destructured declaration")
        else:
            name = declaration.child_by_field_name("name")
            if name is not None:
                found.names.add(_text(name))
        return
    clause = next((c for c in node.named_children if c.type == "export_clause"), None)
    if clause is not None:
        for spec in clause.named_children:
            if spec.type != "export_specifier":
                continue
            alias = spec.child_by_field_name("alias") or spec.child_by_field_name("name")
            value = _string_value(alias) if alias is not None and alias.type == "string" else _text(alias)
            found.names.add(value or "")
        return
    namespace = next((c for c in node.named_children if c.type == "namespace_export"), None)
    if namespace is not None:
        ident = [c for c in namespace.named_children if c.type in ("identifier", "string")]
        if ident:
            found.names.add(_string_value(ident[-1]) or _text(ident[-1]))
            return
    found.give_up("it re-exports everything from another module (export *)")


# ---------------------------------------------------------------------------- entry point


def file_exports(path: Path, family: str) -> Exports:
    """The exports of `path` for a runtime family ("python" or "node"); reads that file only."""
    data = path.read_bytes()
    if family == "python":
        return python_exports(data.decode("utf-8", "replace"))
    return javascript_exports(data)
