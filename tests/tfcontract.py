"""The tfvars contract between orch and modules/stack, read from the module's HCL.

`module_types(path)` parses a `variables.tf` with python-hcl2 (its lark parse tree, so type
expressions such as `object({a = optional(string, "x")})` are read structurally, not by
regex) into `TfType`s; `check(value, type)` lists every key orch sends that the type does not
declare and every required attribute it does not send. Terraform itself drops unknown
object attributes without a word, which is how `access_logs_enabled` went unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from lark import Token, Tree


@dataclass(frozen=True)
class TfType:
    """A Terraform type constraint: kind is string/number/bool/any/map/list/set/object/tuple."""

    kind: str
    element: TfType | None = None  # map, list, set
    attributes: dict[str, tuple[TfType, bool]] = field(default_factory=dict)  # object: name -> (type, optional)


def _children(node: Tree) -> list[Any]:
    return [c for c in node.children if isinstance(c, Tree)]


def _identifier(node: Tree) -> str:
    return str(node.children[0])


def _expr(node: Tree) -> Tree:
    """Unwrap expr_term layers down to the expression itself."""
    while node.data == "expr_term" and len(_children(node)) == 1:
        node = _children(node)[0]
    return node


def parse_type(node: Tree) -> TfType:
    node = _expr(node)
    if node.data == "identifier":
        return TfType(_identifier(node))
    if node.data == "function_call":
        name = _identifier(_children(node)[0])
        args = [c for c in _children(_children(node)[1])] if len(_children(node)) > 1 else []
        if name in ("map", "list", "set"):
            return TfType(name, element=parse_type(args[0]))
        if name == "object":
            attrs: dict[str, tuple[TfType, bool]] = {}
            obj = _expr(args[0])
            for elem in _children(obj):
                if elem.data != "object_elem":
                    continue
                key_node, value_node = _children(elem)[0], _children(elem)[1]
                key = _identifier(_expr(_children(key_node)[0]))
                value = _expr(value_node)
                if value.data == "function_call" and _identifier(_children(value)[0]) == "optional":
                    inner = _children(_children(value)[1])[0]
                    attrs[key] = (parse_type(inner), True)
                else:
                    attrs[key] = (parse_type(value), False)
            return TfType("object", attributes=attrs)
        if name == "tuple":
            return TfType("tuple")
    raise ValueError(f"unsupported type expression {node.data}")


def module_types(variables_tf: Path) -> dict[str, tuple[TfType, bool]]:
    """Each `variable` block of a file: name -> (type, has_default). No `type` means any."""
    tree = hcl2.parse_to_tree(variables_tf.open())
    found: dict[str, tuple[TfType, bool]] = {}
    for block in _children(_children(tree)[0]):
        if block.data != "block" or _identifier(_children(block)[0]) != "variable":
            continue
        name = "".join(str(t) for t in _children(block)[1].iter_subtrees() for t in t.children
                       if isinstance(t, Token) and t.type == "STRING_CHARS")
        body = [c for c in _children(block) if c.data == "body"][0]
        type_ = TfType("any")
        has_default = False
        for attr in _children(body):
            if attr.data != "attribute":
                continue
            key = _identifier(_children(attr)[0])
            if key == "type":
                type_ = parse_type(_children(attr)[1])
            elif key == "default":
                has_default = True
        found[name] = (type_, has_default)
    return found


def check(value: Any, type_: TfType, where: str = "") -> list[str]:
    """Problems with `value` against `type_`: unknown keys, missing required keys, wrong shapes."""
    problems: list[str] = []
    if type_.kind == "any" or value is None:
        return problems
    if type_.kind == "object":
        if not isinstance(value, dict):
            return [f"{where or '(root)'}: expected an object, got {type(value).__name__}"]
        for key in value:
            if key not in type_.attributes:
                problems.append(f"{where}.{key}: not declared by the module (Terraform would drop it)")
        for key, (attr_type, optional) in type_.attributes.items():
            if key in value:
                problems += check(value[key], attr_type, f"{where}.{key}")
            elif not optional:
                problems.append(f"{where}.{key}: required by the module but not sent")
        return problems
    if type_.kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected a map, got {type(value).__name__}"]
        for key, item in value.items():
            problems += check(item, type_.element or TfType("any"), f"{where}[{key!r}]")
        return problems
    if type_.kind in ("list", "set"):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        for index, item in enumerate(value):
            problems += check(item, type_.element or TfType("any"), f"{where}[{index}]")
        return problems
    expected = {"string": (str,), "number": (int, float), "bool": (bool,)}.get(type_.kind)
    if expected and (not isinstance(value, expected) or (type_.kind == "number" and isinstance(value, bool))):
        problems.append(f"{where}: expected {type_.kind}, got {type(value).__name__} {value!r}")
    return problems


def check_tfvars(tfvars: dict[str, Any], variables: dict[str, tuple[TfType, bool]]) -> list[str]:
    """Every problem of a whole terraform.tfvars.json against a module's variables."""
    problems = [f"{key}: not a variable of the module" for key in tfvars if key not in variables]
    for name, (type_, has_default) in variables.items():
        if name in tfvars:
            problems += check(tfvars[name], type_, name)
        elif not has_default:
            problems.append(f"{name}: required variable not sent")
    return problems
