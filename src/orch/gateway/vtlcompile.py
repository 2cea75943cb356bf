"""airspeed's parse tree of a mapping template, compiled into one Python function.

airspeed (airspeed-ext 0.6.9, pinned) walks its parse tree node by node on every render,
several Python calls per ``$a.b.c``. ``compile_tree`` turns that tree, once, into the source
of one Python function that does what airspeed's evaluation does, step for step: the same
lookups in the same order (``obj[name]``, then ``getattr``, then airspeed's
``__additional_methods__``), the same order of evaluation (airspeed's operator stack
computes the right operand of a binary operator before the left one and never
short-circuits), the same scopes, the same output and the same errors (an exception is
wrapped in airspeed's ``TemplateExecutionError`` naming the same element airspeed's
``_Element.evaluate`` would name).

Scopes. airspeed evaluates a template in a ``LocalNamespace`` over the caller's dict and
gives every ``#foreach`` iteration a new ``LocalNamespace`` holding ``velocityCount``,
``velocityHasNext``, ``foreach`` and the loop variable; ``#set($x = ...)`` writes to the
innermost scope that already holds ``x``, else to the current scope. The compiled function
keeps one Python local per (name, scope depth) that can hold the name, set to a
"missing" marker when its scope starts, and reads a name by checking, innermost first,
the scopes that can hold it, then the caller's dict. Which scopes can hold a name is decided
from the template's text: a loop's own names are always in its scope (so no scope inside it
ever gets that name), and any other name is in a scope only if a ``#set`` of it sits
directly in that scope's body.

What is compiled: text, comments, ``$refs`` (``$!``, ``${}``, ``${a|b}``, chains of names,
method calls and ``[index]``), ``#set`` (also ``$a.b.c =`` and ``$a['k'] =``), ``#if``/
``#elseif``/``#else``, ``#foreach``, ``#stop``, every literal (null, numbers, booleans,
strings, interpolated strings, lists, ranges, maps), unary and binary operators and
parentheses. A template with anything else (``#macro`` and macro calls, ``#define``,
``#evaluate``, ``#parse``, ``#include``, ``#return``, a ``[index]`` after a method call whose
index is not a literal, which airspeed evaluates against the object rather than the
namespace, or a ``$`` that starts no name where a value is expected) is not compiled:
``compile_tree`` returns None and the caller keeps airspeed's own evaluation for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airspeed import operators as ops

_TEE = ops.TemplateExecutionError
_ADDITIONAL_METHODS = ops.__additional_methods__
_RFT = ops.REPLACE_FORMAL_TEXT
_MISSING = object()


class _Unsupported(Exception):
    """A node or shape this compiler leaves to airspeed."""


# --- runtime helpers the generated code calls -------------------------------------------

PLAIN_DICT, NO_NAME_ITEM, OTHER_ITEM = 0, 1, 2
_kinds: dict[type, int] = {}


def item_kind(cls: type) -> int:
    """How ``obj[name]`` (``name`` a str), airspeed's first lookup of a name on a value,
    behaves for instances of ``cls`` (cached per type): ``PLAIN_DICT``, it is
    ``dict.get(obj, name)`` with a KeyError as None; ``NO_NAME_ITEM``, it always raises
    TypeError (no ``__getitem__``, or a str/list/tuple/range one), so the lookup finds None;
    ``OTHER_ITEM``, anything else: try it."""
    kind = _kinds.get(cls)
    if kind is None:
        if issubclass(cls, type):
            kind = OTHER_ITEM  # classes can be subscriptable through __class_getitem__
        elif (
            issubclass(cls, dict)
            and cls.__getitem__ is dict.__getitem__
            and not hasattr(cls, "__missing__")
        ):
            kind = PLAIN_DICT
        elif any(
            issubclass(cls, base) and cls.__getitem__ is base.__getitem__
            for base in (str, list, tuple, range)
        ) or (not hasattr(cls, "__getitem__") and not hasattr(cls, "__class_getitem__")):
            kind = NO_NAME_ITEM
        else:
            kind = OTHER_ITEM
        _kinds[cls] = kind
    return kind


_DICTS: frozenset[type] = frozenset({dict})
"""Exact types whose ``obj[name]`` and ``obj.get(name)`` are dict's own; ``add_dict_types``
adds the caller's map types."""


def add_dict_types(*classes: type) -> None:
    """Let compiled templates read keys of these map types inline: each must be a dict
    subclass with dict's own ``__getitem__`` and ``get`` and no ``__missing__`` (else
    ValueError), so that ``obj.get(name)`` is what airspeed's ``obj[name]`` finds."""
    global _DICTS
    for cls in classes:
        if not (
            issubclass(cls, dict)
            and cls.__getitem__ is dict.__getitem__
            and cls.get is dict.get
            and not hasattr(cls, "__missing__")
        ):
            raise ValueError(f"{cls.__name__} is not a plain dict type")
    _DICTS = _DICTS | frozenset(classes)


def _method_ref(methods: dict, name: str, obj: Any) -> Callable[..., Any]:
    """airspeed's ``_call_method`` closure for an ``__additional_methods__`` entry."""

    def _call_method(*args: Any) -> Any:
        return methods[name](obj, *args)

    _call_method.__qualname__ = "NameOrCall.calculate.<locals>._call_method"
    return _call_method


def _member(obj: Any, name: str) -> Any:
    """``NameOrCall.calculate``'s lookup of ``name`` on a value (not a namespace): the value
    found, a callable for an added method, or None."""
    kind = _kinds.get(type(obj))
    if kind is None:
        kind = item_kind(type(obj))
    if kind == PLAIN_DICT:
        result = dict.get(obj, name)
    elif kind == OTHER_ITEM:
        try:
            result = obj[name]
        except (KeyError, TypeError, AttributeError):
            result = None
    else:
        result = None
    if result is None:
        result = getattr(obj, name, None)
        if result is None:
            methods = _ADDITIONAL_METHODS.get(obj.__class__)
            if methods and name in methods:
                result = _method_ref(methods, name, obj)
    return result


def _index(value: Any, index: Any) -> Any:
    """``$a[i]`` where the ``[i]`` belongs to the name (NameOrCall.index)."""
    if isinstance(value, list) and not isinstance(index, int):
        raise ValueError("expected integer for array index, got '%s'" % (index))  # noqa: UP031
    try:
        return value[index]
    except Exception:
        return None


def _range(first: Any, last: Any) -> range:
    if last < first:
        return range(first, last - 1, -1)
    return range(first, last + 1)


def _iterable(value: Any, var: str) -> Any:
    """What ``#foreach`` iterates (airspeed's checks, in its order)."""
    if hasattr(value, "keys"):
        value = value.keys()
    try:
        iter(value)
    except TypeError:
        # raised inside the except clause, as airspeed does (the TypeError is its context)
        raise ValueError(  # noqa: B904
            "value for $%s is not iterable in #foreach: %s" % (var, value)  # noqa: UP031
        )
    return value


def _text(value: Any, source: str) -> str:
    """What a reference whose value is not None and not exactly a str writes."""
    if value == _RFT:
        return source
    if isinstance(value, str):
        return value
    return ops.value_to_string(value)


def _wrap(node: Any, exc: BaseException) -> _TEE:
    return _TEE(node, (type(exc), exc, exc.__traceback__))


def _discard(_text: str) -> None:
    pass


# --- the compiler ------------------------------------------------------------------------

_PY_OPERATORS: dict[int, str] = {}
for _op, _fn in ops.BinaryOperator.OPERATORS.items():
    _PY_OPERATORS[id(_fn)] = {
        "gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!=", "/": "//",
        "||": "or", "&&": "and",
    }.get(_op, _op)


def tree_children(node: Any) -> list:
    """The parse-tree elements ``node`` holds: attributes, list/tuple items, dict keys and
    values, and the element behind a bound method (airspeed's ParenthesizedExpression keeps
    only its inner expression's ``calculate``)."""
    out = []
    for value in vars(node).values():
        if isinstance(value, ops._Element):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, ops._Element))
        elif isinstance(value, dict):
            for k, v in value.items():
                out.extend(x for x in (k, v) if isinstance(x, ops._Element))
        elif callable(value) and isinstance(getattr(value, "__self__", None), ops._Element):
            out.append(value.__self__)  # ParenthesizedExpression keeps only .calculate
    return out


_SUPPORTED = {
    ops.TemplateBody, ops.Block, ops.Text, ops.FallthroughHashText, ops.Comment,
    ops.FormalReference, ops.VariableExpression, ops.NameOrCall, ops.SubExpression,
    ops.ParameterList, ops.ValueList, ops.ArrayIndex, ops.AlternateValue, ops.Value,
    ops.NullLiteral, ops.IntegerLiteral, ops.FloatingPointLiteral, ops.BooleanLiteral,
    ops.StringLiteral, ops.InterpolatedStringLiteral, ops.ArrayLiteral, ops.Range,
    ops.DictionaryLiteral, ops.ParenthesizedExpression, ops.Expression, ops.BinaryOperator,
    ops.UnaryOperatorValue, ops.Condition, ops.IfDirective, ops.ElseifBlock, ops.ElseBlock,
    ops.End, ops.SetDirective, ops.Assignment, ops.AssignmentTerm, ops.DotDictAccessTerm,
    ops.BracketedValueTerm, ops.ForeachDirective, ops.StopDirective,
}
_LOOP_NAMES = ("velocityCount", "velocityHasNext", "foreach")


class _Scope:
    """One namespace level of the compiled code: depth 0 is the template's own scope."""

    def __init__(self, depth: int, node: Any) -> None:
        self.depth = depth
        self.node = node  # the ForeachDirective (None at depth 0)
        self.always: set[str] = set()  # names every iteration's scope holds
        self.settable: set[str] = set()  # names a #set directly in this scope may add


class _Compiler:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.lines: list[str] = []
        self.indent = 1
        self.consts: dict[str, Any] = {}
        self.const_ids: dict[int, str] = {}
        self.counter = 0
        self.var_ids: dict[str, int] = {}
        self.scopes: list[_Scope] = []
        self.scope_of: dict[int, _Scope] = {}  # id(ForeachDirective) -> its scope
        self.root_names: set[str] = set()  # names read or set anywhere
        self.writer = "_w"

    # -- bookkeeping
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def tmp(self) -> str:
        self.counter += 1
        return f"_t{self.counter}"

    def const(self, value: Any) -> str:
        if value is None or isinstance(value, (bool, int, str)):
            return repr(value)
        key = id(value)
        name = self.const_ids.get(key)
        if name is None:
            name = f"_k{len(self.consts)}"
            self.consts[name] = value
            self.const_ids[key] = name
        return name

    def held(self, expression: str) -> str:
        """``expression`` in a local (a literal is tested with ``is`` only from a local)."""
        if expression.startswith(("_t", "_v", "_r")):
            return expression
        out = self.tmp()
        self.emit(f"{out} = {expression}")
        return out

    def var(self, name: str, depth: int) -> str:
        number = self.var_ids.setdefault(name, len(self.var_ids))
        return f"_v{number}_{depth}"

    def root_var(self, name: str) -> str:
        number = self.var_ids.setdefault(name, len(self.var_ids))
        return f"_r{number}"

    # -- the pre-pass: what every scope can hold
    def analyse(self) -> None:
        top = _Scope(0, None)
        self.scope_of[id(None)] = top
        stack: list[tuple[Any, _Scope]] = [(self.root, top)]
        seen: set[int] = set()
        while stack:
            node, scope = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            cls = type(node)
            if cls not in _SUPPORTED:
                raise _Unsupported(cls.__name__)
            if cls is ops.Assignment:
                self.root_names.add(node.root_term)
                if not node.terms:
                    scope.settable.add(node.root_term)
            elif cls is ops.FormalReference:
                if node.expression is not None:
                    self.root_names.add(node.expression.part.name)
            elif cls is ops.ForeachDirective:
                inner = _Scope(scope.depth + 1, node)
                inner.always.update((*_LOOP_NAMES, node.loop_var_name))
                self.scope_of[id(node)] = inner
                stack.append((node.value, scope))
                stack.append((node.block, inner))
                continue
            elif cls is ops.SubExpression and type(node.expression) is ops.ArrayIndex:
                if type(node.expression.index) not in (ops.IntegerLiteral, ops.StringLiteral):
                    raise _Unsupported("[index] evaluated against an object")
            stack.extend((child, scope) for child in tree_children(node))

    # -- names
    def _where(self, name: str) -> tuple[int | None, list[int]]:
        """The innermost scope that always holds ``name`` (None if none does) and, innermost
        first, the deeper scopes a #set may have added it to. No scope inside one that
        always holds a name ever gets it: a #set there finds it in an outer scope first."""
        candidates = []
        for scope in reversed(self.scopes):
            if name in scope.always:
                return scope.depth, []
            if name in scope.settable:
                candidates.append(scope.depth)
        return None, candidates

    def lookup(self, name: str, *, strict: bool = False) -> str:
        """A local holding ``namespace[name]`` (LocalNamespace.__getitem__): None when
        missing, or KeyError when ``strict``."""
        always, candidates = self._where(name)
        if always is not None:
            return self.var(name, always)
        out = self.tmp()
        final = f"_root[{name!r}]" if strict else self.root_var(name)
        if not candidates:
            self.emit(f"{out} = {final}")
            return out
        for number, depth in enumerate(candidates):
            local = self.var(name, depth)
            self.emit(f"{'if' if number == 0 else 'elif'} {local} is not _MISSING:")
            self.emit(f"    {out} = {local}")
        self.emit("else:")
        self.emit(f"    {out} = {final}")
        return out

    def assign(self, name: str, value: str) -> None:
        """``namespace.set_inherited(name, value)``: the innermost scope holding ``name``,
        else the current one."""
        always, candidates = self._where(name)
        if always is not None:
            self.emit(f"{self.var(name, always)} = {value}")
            return
        current = self.var(name, self.scopes[-1].depth)
        outer = [d for d in candidates if d != self.scopes[-1].depth]
        if not outer:
            self.emit(f"{current} = {value}")
            return
        self.emit(f"if {current} is not _MISSING:")
        self.emit(f"    {current} = {value}")
        for depth in outer:
            local = self.var(name, depth)
            self.emit(f"elif {local} is not _MISSING:")
            self.emit(f"    {local} = {value}")
        self.emit("else:")
        self.emit(f"    {current} = {value}")

    # -- expressions: emit lines, return an expression free of side effects
    def value(self, node: Any) -> str:
        cls = type(node)
        if cls is ops.Value:
            return self.value(node.expression)
        if cls in (ops.IntegerLiteral, ops.FloatingPointLiteral, ops.BooleanLiteral,
                   ops.StringLiteral, ops.NullLiteral):
            return self.const(node.value)
        if cls is ops.InterpolatedStringLiteral:
            return self.interpolated(node)
        if cls is ops.FormalReference:
            if node.expression is None:
                raise _Unsupported("a $ that starts no name, as a value")
            return self.chain(node.expression)
        if cls is ops.VariableExpression:
            return self.chain(node)
        if cls is ops.ArrayLiteral:
            values = node.values
            if type(values) is ops.Range:
                first = self.value(values.value1)
                last = self.value(values.value2)
                out = self.tmp()
                self.emit(f"{out} = _range({first}, {last})")
                return out
            if isinstance(values, ops._EmptyValues):
                out = self.tmp()
                self.emit(f"{out} = []")
                return out
            items = [self.value(v) for v in values.values]
            out = self.tmp()
            self.emit(f"{out} = [{', '.join(items)}]")
            return out
        if cls is ops.DictionaryLiteral:
            out = self.tmp()
            self.emit(f"{out} = {{}}")
            for key, val in node.local_data.items():
                v = self.value(val)  # `tmp[key.calculate()] = val.calculate()`: value first
                k = self.value(key)
                self.emit(f"{out}[{k}] = {v}")
            return out
        if cls is ops.ParenthesizedExpression:
            inner = getattr(node.calculate, "__self__", None)
            if type(inner) is not ops.Expression:
                raise _Unsupported("parenthesized expression")
            return self.expression(inner)
        if cls is ops.Expression:
            return self.expression(node)
        if cls is ops.UnaryOperatorValue:
            if node.op is not ops.operator.__not__:
                raise _Unsupported("unary operator")
            v = self.held(self.value(node.value))
            out = self.tmp()
            self.emit(f"{out} = False if {v} is None else not {v}")
            return out
        raise _Unsupported(cls.__name__)

    def expression(self, node: Any) -> str:
        """Expression.calculate: airspeed's operator-precedence stack, simulated here so
        that operands are computed exactly when (and in the order) airspeed computes them."""
        items = node.expression
        if not items:
            return "False"
        opstack: list = []
        values: list = [(True, items[0])]
        terms = list(items[1:])

        def reduce() -> None:
            is_node, second = values.pop()
            right = self.value(second) if is_node else second
            is_node, first = values.pop()
            left = self.value(first) if is_node else first
            op = _PY_OPERATORS.get(id(opstack.pop().apply_to))
            if op is None:
                raise _Unsupported("binary operator")
            out = self.tmp()
            if op == "or":
                self.emit(f"{out} = bool({left}) or bool({right})")
            elif op == "and":
                self.emit(f"{out} = bool({left}) and bool({right})")
            else:
                self.emit(f"{out} = {left} {op} {right}")
            values.append((False, out))

        while terms:
            if not opstack or terms[0].greater_precedence_than(opstack[-1]):
                opstack.append(terms[0])
                values.append((True, terms[1]))
                terms = terms[2:]
            else:
                reduce()
        while opstack:
            reduce()
        if len(values) != 1:
            raise _Unsupported("operator stack")
        is_node, result = values[0]
        return self.value(result) if is_node else result

    def interpolated(self, node: Any) -> str:
        children = node.block.children
        if all(type(c) in (ops.Text, ops.FallthroughHashText, ops.Comment) for c in children):
            return self.const("".join(c.text for c in children if type(c) is not ops.Comment))
        parts, saved = self.tmp(), self.writer
        self.writer = self.tmp()
        self.emit(f"{parts} = []")
        self.emit(f"{self.writer} = {parts}.append")
        self.block(node.block)
        self.writer = saved
        out = self.tmp()
        self.emit(f"{out} = ''.join({parts})")
        return out

    def args(self, part: Any) -> str:
        values = part.parameters.values
        if isinstance(values, ops._EmptyValues):
            return ""
        return ", ".join(self.value(v) for v in values.values)

    def chain(self, node: Any) -> str:
        """VariableExpression.calculate: the namespace lookup, then every step on the value
        before it (no step is skipped when a value is None, as in airspeed)."""
        steps: list[tuple[str, Any]] = []
        current, sub = node, None
        steps.append(("name", current.part))
        sub = current.subexpression
        while sub:
            if type(sub.expression) is ops.VariableExpression:
                current = sub.expression
                steps.append(("name", current.part))
                sub = current.subexpression
            else:
                steps.append(("index", sub.expression))
                sub = sub.subexpression
        out = self.tmp()
        first = True
        for kind, part in steps:
            if kind == "index":  # SubExpression: current_object[index], errors propagate
                self.emit(f"{out} = {out}[{self.value(part.index)}]")
                continue
            if first:
                found = self.lookup(part.name)
                first = False
            else:
                found = self.tmp()
                # a map of ours: its own key first, as _member would look it up
                self.emit(f"if type({out}) in _DICTS:")
                self.emit(f"    {found} = {out}.get({part.name!r})")
                self.emit(f"    if {found} is None:")
                self.emit(f"        {found} = _member({out}, {part.name!r})")
                self.emit("else:")
                self.emit(f"    {found} = _member({out}, {part.name!r})")
            if part.parameters is not None:
                self.emit(f"if {found} is None:")
                self.emit(f"    {out} = None")
                self.emit("else:")
                self.indent += 1
                self.emit(f"{out} = {found}({self.args(part)})")
                self.indent -= 1
            elif part.index is not None:
                self.emit(f"if {found} is None:")
                self.emit(f"    {out} = None")
                self.emit("else:")
                self.indent += 1
                self.emit(f"{out} = _index({found}, {self.value(part.index.index)})")
                self.indent -= 1
            else:
                self.emit(f"{out} = {found}")
        return out

    # -- statements
    def guarded(self, node: Any, body: Callable[[], None]) -> None:
        """Lines airspeed runs inside ``node.evaluate``: errors name ``node``."""
        self.emit("try:")
        self.indent += 1
        body()
        self.emit("pass")
        self.indent -= 1
        self.emit("except _TEE:")
        self.emit("    raise")
        self.emit("except Exception as _e:")
        self.emit(f"    raise _wrap({self.const(node)}, _e)")

    def block(self, node: Any) -> None:
        pending: list[str] = []

        def flush() -> None:
            if pending:
                self.emit(f"{self.writer}({''.join(pending)!r})")
                pending.clear()

        for child in node.children:
            cls = type(child)
            if cls in (ops.Text, ops.FallthroughHashText):
                pending.append(child.text)
            elif cls is ops.Comment:
                continue
            else:
                flush()
                self.statement(child)
        flush()

    def statement(self, node: Any) -> None:
        cls = type(node)
        if cls is ops.FormalReference:
            self.guarded(node, lambda: self.reference(node))
        elif cls is ops.SetDirective:
            self.guarded(node.assignment, lambda: self.assignment(node.assignment))
        elif cls is ops.IfDirective:
            self.if_directive(node)
        elif cls is ops.ForeachDirective:
            self.guarded(node, lambda: self.foreach(node))
        elif cls is ops.StopDirective:
            self.emit(f"{self.writer} = _discard")
        else:
            raise _Unsupported(cls.__name__)

    def reference(self, node: Any) -> None:
        source = self.const(node.my_text())
        w = self.writer
        if node.expression is None:
            value = "None"
        else:
            value = self.chain(node.expression)
        self.emit(f"if {value} is None:")
        self.indent += 1
        if node.alternate is not None:
            alt = self.tmp()
            self.emit(f"{alt} = {self.value(node.alternate.expression)} or ''")
            self.emit(f"{w}({alt} if isinstance({alt}, str) else _v2s({alt}))")
        elif node.expression is not None:
            self.emit("pass")  # airspeed-ext makes every reference silent: null writes nothing
        else:
            self.emit(f"{w}({source})")
        self.indent -= 1
        self.emit(f"elif {value}.__class__ is str:")
        self.emit(f"    {w}({source} if {value} == _RFT else {value})")
        self.emit("else:")
        self.emit(f"    {w}(_text({value}, {source}))")

    def assignment(self, node: Any) -> None:
        value = self.value(node.value)
        if not node.terms:
            self.assign(node.root_term, value)
            return
        cur = self.lookup(node.root_term, strict=True)
        for term in node.terms[:-1]:
            key = self.term(term)
            nxt = self.tmp()
            self.emit(f"{nxt} = {cur}[{key}]")
            cur = nxt
        key = self.term(node.terms[-1])
        self.emit(f"{cur}[{key}] = {value}")

    def term(self, node: Any) -> str:
        inner = node.term
        if type(inner) is ops.DotDictAccessTerm:
            return self.const(inner.value)
        return self.value(inner.value)

    def condition(self, node: Any, flag: str, number: int) -> None:
        result = self.held(self.expression(node.expression.calculate.__self__))
        self.emit(f"if {result} is None or {result}:")
        self.emit(f"    {flag} = {number}")

    def if_directive(self, node: Any) -> None:
        if type(node.condition.expression.calculate.__self__) is not ops.Expression:
            raise _Unsupported("condition")
        for elseif in node.elseifs:
            if type(elseif.condition.expression.calculate.__self__) is not ops.Expression:
                raise _Unsupported("condition")
        flag = self.tmp()
        self.emit(f"{flag} = 0")
        self.guarded(node, lambda: self.condition(node.condition, flag, 1))
        for number, elseif in enumerate(node.elseifs, start=2):
            self.emit(f"if not {flag}:")
            self.indent += 1
            self.guarded(node, lambda e=elseif, n=number: self.condition(e.condition, flag, n))
            self.indent -= 1
        self.emit(f"if {flag} == 1:")
        self.indent += 1
        self.block(node.block)
        self.emit("pass")
        self.indent -= 1
        for number, elseif in enumerate(node.elseifs, start=2):
            self.emit(f"elif {flag} == {number}:")
            self.indent += 1
            self.block(elseif.block)
            self.emit("pass")
            self.indent -= 1
        if type(node.else_block) is ops.ElseBlock:
            self.emit("else:")
            self.indent += 1
            self.block(node.else_block.block)
            self.emit("pass")
            self.indent -= 1

    def foreach(self, node: Any) -> None:
        scope = self.scope_of[id(node)]
        depth = scope.depth
        items = self.value(node.value)
        it, count, length, item = (f"_it{depth}", f"_c{depth}", f"_n{depth}", f"_x{depth}")
        self.emit(f"{it} = {items}")
        self.emit(f"if {it} is not None:")
        self.indent += 1
        self.emit(f"{it} = _iterable({it}, {node.loop_var_name!r})")
        self.emit(f"{length} = len({it})")
        self.emit(f"{count} = 1")
        self.emit(f"for {item} in {it}:")
        self.indent += 1
        used = self.root_names
        if "velocityCount" in used:
            self.emit(f"{self.var('velocityCount', depth)} = {count}")
        if "velocityHasNext" in used:
            self.emit(f"{self.var('velocityHasNext', depth)} = {count} < {length}")
        if "foreach" in used:
            self.emit(
                f"{self.var('foreach', depth)} = {{'count': {count}, 'index': {count} - 1, "
                f"'hasNext': {count} < {length}, 'first': {count} == 1, "
                f"'last': {count} == {length}}}"
            )
        self.emit(f"{self.var(node.loop_var_name, depth)} = {item}")
        for name in sorted(scope.settable - scope.always):
            self.emit(f"{self.var(name, depth)} = _MISSING")
        self.scopes.append(scope)
        self.block(node.block)
        self.scopes.pop()
        self.emit(f"{count} += 1")
        self.indent -= 2

    def function(self) -> str:
        self.analyse()
        top = self.scope_of[id(None)]
        self.scopes = [top]
        body_start = len(self.lines)
        self.block(self.root.block)
        body = self.lines[body_start:]
        del self.lines[body_start:]
        head = ["def _render(_root):", "    _parts = []", "    _w = _parts.append"]
        for name in sorted(self.root_names):
            head.append(f"    {self.root_var(name)} = _root.get({name!r})")
        for name in sorted(top.settable):
            head.append(f"    {self.var(name, 0)} = _MISSING")
        return "\n".join([*head, *body, "    return ''.join(_parts)", ""])


def compile_tree(root: Any) -> Callable[[dict], str] | None:
    """Compile a parsed template (``airspeed.Template(text).root_element``, a TemplateBody)
    into ``fn(namespace) -> str``, where ``namespace`` is the plain dict of top-level
    variables ``Template.merge`` would get. ``fn`` returns what ``merge`` returns and raises
    what the evaluation of ``root`` raises (``TemplateExecutionError`` naming the same
    element, or an exception airspeed lets through unwrapped). Returns None for a template
    with a node or shape this compiler does not handle (see the module's docstring)."""
    compiler = _Compiler(root)
    try:
        source = compiler.function()
        code = compile(source, "<mapping template>", "exec")
    except Exception:
        # not handled, too deeply nested for Python's compiler (SyntaxError, RecursionError)
        # or a tree shape this compiler did not expect: airspeed evaluates it, as before
        return None
    namespace: dict[str, Any] = {
        "_TEE": _TEE,
        "_MISSING": _MISSING,
        "_RFT": _RFT,
        "_member": _member,
        "_DICTS": _DICTS,
        "_index": _index,
        "_range": _range,
        "_iterable": _iterable,
        "_text": _text,
        "_v2s": ops.value_to_string,
        "_wrap": _wrap,
        "_discard": _discard,
        **compiler.consts,
    }
    exec(code, namespace)  # noqa: S102 - source generated above from the parse tree
    function = namespace["_render"]
    function.source = source  # for debugging and the tests
    return function

