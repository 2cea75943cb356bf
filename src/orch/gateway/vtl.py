"""API Gateway mapping templates (Velocity/VTL) rendered with airspeed, the way AWS renders them.

This module owns the template variables AWS offers (``$input``, ``$util``, ``$context``,
``$stageVariables``), the JSONPath subset behind ``$input.json``/``$input.path`` and a cache
of compiled templates. It must not know about HTTP, routing or Lambda: the pipeline hands it
plain data and gets a string (plus ``$context.responseOverride``) back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any, Literal, NamedTuple

import airspeed
from airspeed import operators as _airspeed_ops

from orch.errors import SandboxError
from orch.gateway.vtlcompile import NO_NAME_ITEM, PLAIN_DICT, add_dict_types, compile_tree, item_kind, tree_children

AIRSPEED_DISTRIBUTION = "airspeed-ext"
AIRSPEED_VERSION = "0.6.9"  # the version pyproject.toml pins; the fast paths below rely on it


def check_template_engine() -> None:
    """Fail loudly unless the ``airspeed`` module is airspeed-ext's, at the pinned version.

    airspeed-ext and the older plain ``airspeed`` distribution install the same ``airspeed``
    package; with both installed, whichever was installed last silently wins, and plain
    airspeed renders AWS templates differently (it has none of AWS's Java methods). So:
    no ``airspeed`` distribution may be installed, and the imported ``airspeed/operators.py``
    must be the file airspeed-ext's RECORD lists, byte for byte (its sha256).

    Raises SandboxError naming what was found and how to repair the environment.
    """
    hint = (
        f"Run `pip uninstall -y airspeed && pip install --force-reinstall "
        f"{AIRSPEED_DISTRIBUTION}=={AIRSPEED_VERSION}` in orch's environment."
    )
    try:
        plain = metadata.distribution("airspeed")
    except metadata.PackageNotFoundError:
        plain = None
    if plain is not None and plain.metadata["Name"].lower() == "airspeed":
        raise SandboxError(
            f"The plain `airspeed` {plain.version} package is installed beside "
            f"{AIRSPEED_DISTRIBUTION}: both provide the `airspeed` module, and plain airspeed "
            "renders API Gateway mapping templates wrongly.",
            hint=hint,
        )
    try:
        dist = metadata.distribution(AIRSPEED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise SandboxError(f"{AIRSPEED_DISTRIBUTION} is not installed.", hint=hint) from None
    if dist.version != AIRSPEED_VERSION:
        raise SandboxError(
            f"{AIRSPEED_DISTRIBUTION} {dist.version} is installed; orch's local gateway is built "
            f"and tested on {AIRSPEED_VERSION}.",
            hint=hint,
        )
    recorded = next((f for f in dist.files or () if str(f) == "airspeed/operators.py"), None)
    loaded = os.path.realpath(_airspeed_ops.__file__)
    if recorded is None or recorded.hash is None or os.path.realpath(recorded.locate()) != loaded:
        raise SandboxError(
            f"The `airspeed` module orch imports ({loaded}) is not the one "
            f"{AIRSPEED_DISTRIBUTION} installed.",
            hint=hint,
        )
    with open(loaded, "rb") as handle:
        digest = base64.urlsafe_b64encode(hashlib.sha256(handle.read()).digest()).rstrip(b"=")
    if digest.decode() != recorded.hash.value:
        raise SandboxError(
            f"{loaded} differs from what {AIRSPEED_DISTRIBUTION} {AIRSPEED_VERSION} installed "
            "(another package overwrote it).",
            hint=hint,
        )


check_template_engine()


class TemplateError(Exception):
    """A mapping template could not be compiled or rendered (AWS answers 500)."""


class BodyParseError(TemplateError):
    """A body could not be read as JSON where AWS requires it (AWS answers 400 with
    ``Could not parse request body into json: ...``): JSON nested deeper than
    ``MAX_JSON_DEPTH``."""


MAX_JSON_DEPTH = 1000
"""Jackson's default ``StreamReadConstraints.getMaxNestingDepth()``. Python's own JSON
decoder stops near the same depth (the interpreter's recursion limit, 1000 by default) with a
RecursionError, which ``loads_json`` turns into the message Jackson gives."""


class NotJson(ValueError):
    """Text that is not a JSON document."""


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` as the gateway needs it everywhere: JSON's grammar only (no NaN or
    Infinity, which Python accepts and Jackson refuses), ``NotJson`` for text that is not
    JSON and ``BodyParseError`` for a document nested too deep (never a RecursionError)."""
    try:
        return _DECODER.decode(text if isinstance(text, str) else text.decode("utf-8"))
    except RecursionError as exc:
        raise BodyParseError(
            f"Document nesting depth exceeds the maximum allowed ({MAX_JSON_DEPTH}, from "
            "`StreamReadConstraints.getMaxNestingDepth()`)"
        ) from exc
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise NotJson(str(exc)) from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"Non-standard token '{name}'")


# Built once: json.loads/json.dumps with any option build a new decoder/encoder per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


# Java-flavoured string methods AWS templates use that airspeed lacks. airspeed looks
# methods up by exact class in this module-level table; only missing names are added.
for _name, _fn in {
    "toLowerCase": lambda s: s.lower(),
    "toUpperCase": lambda s: s.upper(),
    "trim": lambda s: s.strip(),
    "endsWith": lambda s, suffix: s.endswith(suffix),
    "equals": lambda s, other: s == other,
    "equalsIgnoreCase": lambda s, other: isinstance(other, str) and s.lower() == other.lower(),
    "isEmpty": lambda s: len(s) == 0,
    "replace": lambda s, old, new: s.replace(old, new),
    "split": lambda s, sep: VtlList(re.split(sep, s)),
    "lastIndexOf": lambda s, sub: s.rfind(sub),
    "charAt": lambda s, i: s[i],
    "toString": lambda s: s,
}.items():
    _airspeed_ops.__additional_methods__[str].setdefault(_name, _fn)


def _java_str(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json_compact(value: Any) -> str:
    return _COMPACT.encode(value)


class VtlMap(dict):
    """A dict that behaves like the java.util.Map AWS hands to templates."""

    def keySet(self) -> list:  # noqa: N802 - Java method name used in templates
        return VtlList(self.keys())

    def containsKey(self, key: Any) -> bool:  # noqa: N802
        return key in self

    def put(self, key: Any, value: Any) -> Any:
        old = dict.get(self, key)
        self[key] = value
        return old

    def putAll(self, other: Mapping) -> None:  # noqa: N802
        self.update(other)

    def size(self) -> int:
        return len(self)

    def isEmpty(self) -> bool:  # noqa: N802
        return not self

    def entrySet(self) -> list:  # noqa: N802
        return VtlList(VtlMap(key=k, value=v) for k, v in self.items())

    def toString(self) -> str:  # noqa: N802
        return str(self)

    def __str__(self) -> str:
        return "{" + ", ".join(f"{k}={_java_str(v)}" for k, v in self.items()) + "}"


class VtlList(list):
    """A list that behaves like the java.util.List AWS hands to templates."""

    def size(self) -> int:
        return len(self)

    def isEmpty(self) -> bool:  # noqa: N802
        return not self

    def contains(self, value: Any) -> bool:
        return value in self

    def get(self, index: int) -> Any:
        return self[index]

    def add(self, value: Any) -> bool:
        self.append(value)
        return True

    def toString(self) -> str:  # noqa: N802
        return str(self)

    def __str__(self) -> str:
        return "[" + ", ".join(_java_str(v) for v in self) + "]"


class JsonList(VtlList):
    """A list read from JSON (``$input.path``, ``$util.parseJson``): AWS prints it as compact
    JSON (``[{"foo":"bar"}]``), where a list that is not from JSON (``keySet()``,
    ``split()``) prints Java-style. A map read from JSON still prints Java-style, also
    inside a list element taken out of it (recorded: case 16 and LocalStack's AWS snapshot
    ``test_input_path_template_formatting``: ``{foo=[{"nested":"bar"}]}``)."""

    def toString(self) -> str:  # noqa: N802
        return str(self)

    def __str__(self) -> str:
        return _json_compact(self)


class ContextMap(VtlMap):
    """A ``$context`` map: AWS renders a nested context map (identity, overrides) as ""."""

    def __str__(self) -> str:
        return ""


class RootContext(VtlMap):
    """``$context``: keys AWS lists in keySet(), plus members reachable only by name."""

    def __init__(self, values: Mapping[str, Any], hidden: Mapping[str, Any]) -> None:
        super().__init__(values)
        self._hidden = dict(hidden)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_hidden"][name]
        except KeyError:
            raise AttributeError(name) from None


def to_vtl(value: Any) -> Any:
    """Turn parsed JSON into VtlMap/JsonList so templates get Java-like maps and JSON lists."""
    if isinstance(value, dict):
        return VtlMap((k, to_vtl(v)) for k, v in value.items())
    if isinstance(value, list):
        return JsonList(to_vtl(v) for v in value)
    return value


# --- JSONPath subset: $, .name, ['name'], ["name"], [n], [*], .* ----------------------

_JSONPATH_TOKEN = re.compile(
    r"""\.\s*(?P<dot>[^.\[\]\s]+)       # .name or .*
      | \[\s*'(?P<sq>(?:[^'\\]|\\.)*)'\s*\]
      | \[\s*"(?P<dq>(?:[^"\\]|\\.)*)"\s*\]
      | \[\s*(?P<idx>-?\d+)\s*\]
      | \[\s*(?P<star>\*)\s*\]
    """,
    re.VERBOSE,
)
_WILDCARD = object()
_path_cache: dict[str, tuple] = {}


def _compile_jsonpath(path: str) -> tuple:
    cached = _path_cache.get(path)
    if cached is not None:
        return cached
    text = path.strip()
    if not text.startswith("$"):
        # AWS accepts a path without the leading $ in responseParameters body mappings.
        text = "$." + text if text else "$"
    pos, steps = 1, []
    while pos < len(text):
        match = _JSONPATH_TOKEN.match(text, pos)
        if not match:
            raise TemplateError(f"unsupported JSONPath expression {path!r} at offset {pos}")
        if match.group("dot") is not None:
            name = match.group("dot")
            steps.append(_WILDCARD if name == "*" else name)
        elif match.group("sq") is not None:
            steps.append(match.group("sq"))
        elif match.group("dq") is not None:
            steps.append(match.group("dq"))
        elif match.group("idx") is not None:
            steps.append(int(match.group("idx")))
        else:
            steps.append(_WILDCARD)
        pos = match.end()
    result = tuple(steps)
    if len(_path_cache) < 4096:
        _path_cache[path] = result
    return result


def jsonpath_get(document: Any, path: str) -> Any:
    """Evaluate a JSONPath subset; a missing member gives None, a wildcard a list."""
    values, multi = [document], False
    for step in _compile_jsonpath(path):
        nxt: list = []
        for value in values:
            if step is _WILDCARD:
                multi = True
                if isinstance(value, dict):
                    nxt.extend(value.values())
                elif isinstance(value, list):
                    nxt.extend(value)
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    nxt.append(value[step])
            elif isinstance(value, dict) and step in value:
                nxt.append(value[step])
        values = nxt
    if multi:
        return values
    return values[0] if values else None


# --- $input, $util ---------------------------------------------------------------------


_NOT_JSON = object()


class InputVariable:
    """``$input``: the request (or integration response) body and the request parameters.

    As AWS renders it (case 17, LocalStack's AWS snapshot ``test_input_body_formatting``):
    ``$input.body`` is the raw body text, ``{}`` for an empty body, in request and response
    templates alike. ``$input.json(path)``/``$input.path(path)`` read the body as JSON (an
    empty body is ``{}``). A body that is not JSON is read as one JSON string: ``$input.path
    ('$')`` is the raw text (Serverless' default form template splits it on ``&`` and ``=``
    and works on AWS), ``$input.json('$')`` its JSON-quoted text, any deeper path null. That
    the raw text is what ``$input.path('$')`` returns is established by that template's use
    on AWS; ``$input.json`` of a body that is not JSON is not recorded anywhere we know and
    follows the same reading. JSON nested deeper than ``MAX_JSON_DEPTH`` raises
    ``BodyParseError`` (AWS: 400).
    """

    def __init__(
        self,
        body: str,
        params: Mapping[str, Mapping[str, str]] | None = None,
        *,
        header_lookup: Mapping[str, str] | None = None,
    ) -> None:
        self._text = body or ""
        self.body = self._text if self._text else "{}"
        self._params = params or {"path": {}, "querystring": {}, "header": {}}
        self._header_lookup = header_lookup
        self._parsed: Any = None
        self._parsed_ok = False

    def _document(self) -> Any:
        if not self._parsed_ok:
            text = self._text
            if not text.strip():
                self._parsed = {}
            else:
                try:
                    self._parsed = loads_json(text)
                except NotJson:
                    self._parsed = _NOT_JSON
            self._parsed_ok = True
        return self._parsed

    def _select(self, path: str) -> Any:
        document = self._document()
        if document is _NOT_JSON:
            return self._text if not _compile_jsonpath(path) else None
        return jsonpath_get(document, path)

    def json(self, path: str = "$") -> str:
        return _json_compact(self._select(path))

    def path(self, path: str = "$") -> Any:
        return to_vtl(self._select(path))

    def params(self, name: str | None = None) -> Any:
        if name is None:
            params = self._params
            return VtlMap(
                {kind: VtlMap(params.get(kind, {})) for kind in ("path", "querystring", "header")}
            )
        for kind in ("path", "querystring"):
            value = self._params.get(kind, {}).get(name)
            if value is not None:
                return value
        lookup = self._header_lookup
        if lookup is None:
            lookup = {k.lower(): v for k, v in self._params.get("header", {}).items()}
            self._header_lookup = lookup
        return lookup.get(name.lower(), "") if isinstance(name, str) else ""

    def size(self) -> int:
        return len(self._text.encode())


_JS_PLAIN = re.compile(r"[^'\"\\/\x00-\x1f\x7f-\U0010ffff]*")
"""Text ``escape_javascript`` leaves as it is: printable ASCII other than ' " \\ /."""
_JS_ASCII = {
    **{code: f"\\u{code:04X}" for code in range(0x20)},
    **{ord(ch): "\\" + ch for ch in "'\"\\/"},
    ord("\b"): "\\b",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\f"): "\\f",
    ord("\r"): "\\r",
}
"""What ``escape_javascript`` writes for each ASCII character it escapes."""
_JS_WIDE = re.compile(r"[\x80-\U0010ffff]")
_js_escaped: dict[str, str] = {}
"""Escaped text by text (bounded): the same header values come with request after request."""


def _js_wide(match: re.Match) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        encoded = match.group().encode("utf-16-be")
        return f"\\u{encoded[0]:02X}{encoded[1]:02X}\\u{encoded[2]:02X}{encoded[3]:02X}"
    return f"\\u{code:04X}"


def escape_javascript(value: Any) -> str | None:
    """Java commons-lang ``StringEscapeUtils.escapeJavaScript``, as AWS's $util uses: None
    for None, else the text of ``value`` (``_java_str``) with ' " \\ / escaped by a
    backslash, control characters as \\b \\n \\t \\f \\r or \\uXXXX and every non-ASCII
    character as \\uXXXX (a surrogate pair above U+FFFF), hex in upper case."""
    if value is None:
        return None
    text = value if type(value) is str else _java_str(value)
    found = _js_escaped.get(text)
    if found is not None:
        return found
    if _JS_PLAIN.fullmatch(text):
        return text  # nothing to escape
    out = text.translate(_JS_ASCII)
    if not out.isascii():
        out = _JS_WIDE.sub(_js_wide, out)
    if len(text) <= 512:
        if len(_js_escaped) >= 4096:
            _js_escaped.clear()
        _js_escaped[text] = out
    return out


class UtilVariable:
    """``$util``."""

    def escapeJavaScript(self, value: Any) -> str | None:  # noqa: N802
        return escape_javascript(value)

    def parseJson(self, text: str) -> Any:  # noqa: N802
        try:
            return to_vtl(loads_json(_java_str(text)))
        except NotJson as exc:
            raise TemplateError(f"$util.parseJson: {exc}") from exc

    def urlEncode(self, value: str | None) -> str:  # noqa: N802
        # null (e.g. ``$input.body.testAccess``) encodes to "" (case 17)
        return "" if value is None else urllib.parse.quote_plus(_java_str(value), safe="*")

    def urlDecode(self, value: str | None) -> str:  # noqa: N802
        return "" if value is None else urllib.parse.unquote_plus(_java_str(value))

    def base64Encode(self, value: Any) -> str:  # noqa: N802
        data = value if isinstance(value, bytes) else _java_str(value).encode()
        return base64.b64encode(data).decode()

    def base64Decode(self, value: str) -> str:  # noqa: N802
        return base64.b64decode(_java_str(value)).decode("utf-8", errors="replace")

    def toJson(self, value: Any) -> str:  # noqa: N802
        return _json_compact(value)


UTIL = UtilVariable()

# --- $context --------------------------------------------------------------------------

IDENTITY_KEYS = (
    "cognitoIdentityPoolId",
    "accountId",
    "cognitoIdentityId",
    "caller",
    "sourceIp",
    "principalOrgId",
    "accessKey",
    "cognitoAuthenticationType",
    "cognitoAuthenticationProvider",
    "userArn",
    "userAgent",
    "user",
)
"""Order of ``$context.identity.keySet()`` on AWS (case_4)."""


def build_context(
    *,
    resource_id: str,
    resource_path: str,
    http_method: str,
    extended_request_id: str,
    request_time: str,
    path: str,
    account_id: str,
    protocol: str,
    stage: str,
    domain_prefix: str,
    request_time_epoch: int,
    request_id: str,
    identity: Mapping[str, Any],
    domain_name: str,
    deployment_id: str,
    api_id: str,
) -> RootContext:
    """``$context`` with AWS's keySet() order (case_4) and its nested maps."""
    values = {
        "resourceId": resource_id,
        "resourcePath": resource_path,
        "httpMethod": http_method,
        "extendedRequestId": extended_request_id,
        "requestTime": request_time,
        "path": path,
        "accountId": account_id,
        "protocol": protocol,
        "requestOverride": ContextMap(
            path=ContextMap(), header=ContextMap(), querystring=ContextMap()
        ),
        "stage": stage,
        "domainPrefix": domain_prefix,
        "requestTimeEpoch": request_time_epoch,
        "requestId": request_id,
        "identity": ContextMap({k: identity.get(k) for k in IDENTITY_KEYS}),
        "domainName": domain_name,
        "deploymentId": deployment_id,
        "responseOverride": ContextMap(header=ContextMap()),
        "apiId": api_id,
    }
    hidden = {"authorizer": ContextMap(), "error": ContextMap()}
    return RootContext(values, hidden)


# --- compile and render ----------------------------------------------------------------
#
# airspeed evaluates its parse tree node by node, several Python calls per reference.
# ``render`` runs most templates as one Python function that vtlcompile generates from
# airspeed's tree (same output, same errors). For a template vtlcompile leaves alone (macros,
# #define, #evaluate, ...), airspeed evaluates the tree, and after parsing ``_specialize``
# gives the hottest node shapes per-instance shortcuts that do exactly
# what airspeed's own methods do (same lookups in the same order, same results, the same
# ``evaluate`` wrappers for errors), with fewer calls: a ``$a.b.c`` chain becomes one loop,
# a lookup in a #foreach scope walks the scopes without raising KeyError at each level.

_LocalNamespace = _airspeed_ops.LocalNamespace
_FunctionDefinition = _airspeed_ops._FunctionDefinition
_MISSING = object()
_LOOKUP_ERRORS = (KeyError, TypeError, AttributeError)
_ADDITIONAL_METHODS = _airspeed_ops.__additional_methods__
_type_kinds: dict[type, int] = {}
_GENERIC = 3  # beside vtlcompile's item kinds: a scope subclass, left to airspeed's own lookup


def _type_kind(cls: type) -> int:
    kind = _type_kinds.get(cls)
    if kind is None:
        kind = _GENERIC if issubclass(cls, _LocalNamespace) else item_kind(cls)
        _type_kinds[cls] = kind
    return kind


def _fast_name(node: Any) -> Callable[[Any, Any, Any], Any]:
    """NameOrCall.calculate for a plain name or a method call (no ``[index]``)."""
    name = node.name
    generic = type(node).calculate.__get__(node)
    parameters = node.parameters

    def calculate(current: Any, loader: Any, top: Any) -> Any:
        cls = type(current)
        if cls is _LocalNamespace:
            ns = current
            result = None
            while type(ns) is _LocalNamespace:
                found = dict.get(ns, name, _MISSING)
                if found is not _MISSING:
                    result = found
                    break
                ns = ns.parent
            else:
                try:
                    result = ns[name]
                except _LOOKUP_ERRORS:
                    result = None
            if result is None:
                return generic(current, loader, top)
        else:
            kind = _type_kind(cls)
            if kind == _GENERIC:
                return generic(current, loader, top)
            if kind == PLAIN_DICT:
                result = dict.get(current, name)
            elif kind == NO_NAME_ITEM:
                result = None
            else:
                try:
                    result = current[name]
                except _LOOKUP_ERRORS:
                    result = None
            if result is None:
                result = getattr(current, name, None)
                if result is None:
                    methods = _ADDITIONAL_METHODS.get(cls)
                    if not methods or name not in methods:
                        return None  # airspeed's answer when no added method has the name
                    return generic(current, loader, top)
        if isinstance(result, _FunctionDefinition):
            return generic(current, loader, top)
        if parameters is not None:
            return result(*parameters.calculate(top, loader))
        return result

    return calculate


def _fast_variable(node: Any) -> Callable[..., Any] | None:
    """VariableExpression.calculate of a ``$a.b(...).c`` chain as one loop."""
    steps = []
    tail = None
    current = node
    while True:
        part = current.part
        if part.index is not None:
            return None
        steps.append(_fast_name(part))
        sub = current.subexpression
        if not sub:
            break
        if isinstance(sub.expression, _airspeed_ops.VariableExpression):
            current = sub.expression
            continue
        tail = sub.calculate  # ``[index]``: airspeed's own code from here on
        break
    first, rest = steps[0], tuple(steps[1:])

    def calculate(namespace: Any, loader: Any, global_namespace: Any = None) -> Any:
        if global_namespace is None:
            global_namespace = namespace
        value = first(namespace, loader, global_namespace)
        for step in rest:
            value = step(value, loader, global_namespace)
        if tail is not None:
            value = tail(value, loader, global_namespace)
        return value

    return calculate


def _specialize(root: Any) -> None:
    """Install the shortcuts bottom-up (children before the nodes that capture them)."""
    order: list = []
    stack: list = [(root, False)]
    seen: set[int] = set()
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in tree_children(node))
    ops = _airspeed_ops
    for node in order:
        cls = type(node)
        if cls is ops.VariableExpression:
            fast = _fast_variable(node)
            if fast is not None:
                node.calculate = fast
        elif cls is ops.Value:
            node.calculate = node.expression.calculate
        elif cls is ops.Expression and len(node.expression) == 1:
            node.calculate = node.expression[0].calculate
        elif cls is ops.FormalReference and node.expression is not None:
            node.calculate = node.expression.calculate
        elif cls is ops.AlternateValue:
            node.calculate = node.expression.calculate
        elif cls is ops.ParenthesizedExpression:
            found = [c for c in tree_children(node) if type(c) is ops.Expression]
            if len(found) == 1 and getattr(node.calculate, "__self__", None) is found[0]:
                node.calculate = found[0].calculate
        elif cls is ops.ElseifBlock:
            node.calculate = node.condition.calculate
        elif cls is ops.Block:
            node.evaluate_raw = _fast_block(node)


def _fast_block(node: Any) -> Callable[[Any, Any, Any], None]:
    """Block.evaluate_raw with a Text child's text written straight to the stream (a Text
    element only writes its text); other children are evaluated as airspeed does."""
    text_cls = _airspeed_ops.Text
    items = tuple(
        (child.text, None) if type(child) is text_cls else (None, child.evaluate)
        for child in node.children
    )

    def evaluate_raw(stream: Any, namespace: Any, loader: Any) -> None:
        for text, evaluate in items:
            if evaluate is None:
                stream.write(text)  # looked up each time: #stop swaps the stream's write
            else:
                evaluate(stream, namespace, loader)

    return evaluate_raw


class _Output:
    """airspeed's StoppableStream without a Python call per write: ``#stop`` swaps ``write``."""

    __slots__ = ("parts", "write", "_stop")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.write = self.parts.append
        self._stop = False

    @property
    def stop(self) -> bool:
        return self._stop

    @stop.setter
    def stop(self, value: bool) -> None:
        self._stop = bool(value)
        self.write = _discard if self._stop else self.parts.append

    def getvalue(self) -> str:
        return "".join(self.parts)


def _discard(_text: str) -> None:
    pass


_NULL_LOADER = _airspeed_ops.NullLoader()
add_dict_types(VtlMap, ContextMap, RootContext)  # compiled templates read their keys inline


class _Compiled(NamedTuple):
    template: airspeed.Template  # parsed, with the shortcuts above installed
    function: Callable[[dict], str] | None  # vtlcompile's function; None: airspeed evaluates


_compiled: dict[str, _Compiled] = {}
_compile_lock = threading.Lock()


def _compile(text: str) -> _Compiled:
    found = _compiled.get(text)
    if found is None:
        template = airspeed.Template(text)
        try:
            template.ensure_compiled()
        except airspeed.TemplateSyntaxError as exc:
            raise TemplateError(f"mapping template syntax error: {exc}") from exc
        function = compile_tree(template.root_element)  # reads the tree as airspeed built it
        _specialize(template.root_element)
        found = _Compiled(template, function)
        with _compile_lock:
            if len(_compiled) > 2048:
                _compiled.clear()
            _compiled[text] = found
    return found


def compile_template(text: str) -> airspeed.Template:
    """Parse once (cached by text); airspeed's tree is read-only during merge, so it is
    shared. Raises TemplateError on a syntax error."""
    return _compile(text).template


def compiled_fully(text: str) -> bool:
    """Whether ``render`` runs ``text`` as one compiled Python function (vtlcompile) rather
    than through airspeed's evaluation of its tree. Raises TemplateError on a syntax error."""
    return _compile(text).function is not None


def render(
    text: str,
    *,
    input_var: InputVariable,
    context: RootContext,
    stage_variables: Mapping[str, str] | None,
    engine: Literal["compiled", "airspeed"] = "compiled",
) -> str:
    """Render one mapping template with the variables AWS offers (``$input``, ``$context``,
    ``$stageVariables``, ``$util``); the output is what airspeed's ``Template.merge`` gives.

    ``engine="compiled"`` runs the template's compiled function when vtlcompile could
    compile it (else airspeed's evaluation); ``"airspeed"`` always evaluates airspeed's
    tree (with the shortcuts above), for comparisons and benchmarks.
    Raises BodyParseError for a body too deeply nested to read or print, TemplateError for
    a syntax error or any other failure (its message is airspeed's).
    """
    compiled = _compile(text)
    namespace = {
        "input": input_var,
        "context": context,
        "stageVariables": VtlMap(stage_variables or {}),
        "util": UTIL,
    }
    try:
        function = compiled.function if engine == "compiled" else None
        if function is not None:
            return function(namespace)
        output = _Output()
        compiled.template.root_element.evaluate(output, namespace, _NULL_LOADER)
        return output.getvalue()
    except airspeed.TemplateExecutionError as exc:
        cause = exc.__cause__
        if isinstance(cause, TemplateError):
            raise cause from exc
        if isinstance(cause, RecursionError):
            raise BodyParseError(
                f"Document nesting depth exceeds what a template can render ({MAX_JSON_DEPTH})"
            ) from exc
        raise TemplateError(str(exc)) from exc
    except TemplateError:
        raise
    except RecursionError as exc:  # a document near the depth limit, printed or walked
        raise BodyParseError(
            f"Document nesting depth exceeds what a template can render ({MAX_JSON_DEPTH})"
        ) from exc
    except Exception as exc:  # airspeed lets some evaluation errors escape unwrapped
        raise TemplateError(f"{type(exc).__name__}: {exc}") from exc


def response_override(context: RootContext) -> tuple[int | None, dict[str, str]]:
    """What a response template set in ``$context.responseOverride`` (status, headers)."""
    override = context.get("responseOverride") or {}
    status = override.get("status")
    parsed: int | None = None
    if status is not None:
        try:
            parsed = int(str(status).strip())
        except ValueError:
            parsed = None
    headers = override.get("header") or {}
    return parsed, {str(k): _java_str(v) for k, v in headers.items() if v is not None}


def iter_header_pairs(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Last value wins, names as sent: the header map ``$input.params()`` exposes."""
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = value
    return out
