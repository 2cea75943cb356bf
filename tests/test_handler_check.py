"""orch.handler_check: is the handler function defined? Read statically, never imported.

Each form a handler can take is a case; so is each form whose exports cannot be known
without running the file (then orch must not fail: no false errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.errors import PackageError
from orch.handler_check import javascript_exports, python_exports
from orch.package import check_handler

PY_DEFINES = {
    "def": "def handler(event, context):\n    return event\n",
    "async-def": "async def handler(event, context):\n    return event\n",
    "assignment": "def _impl(e, c):\n    return e\n\nhandler = _impl\n",
    "annotated": "from typing import Callable\nhandler: Callable = print\n",
    "tuple-assignment": "handler, other = print, print\n",
    "import-as": "from app.impl import run as handler\n",
    "import-plain": "from app.impl import handler\n",
    "module-import-as": "import json as handler\n",
    "class": "class handler:\n    def __init__(self, e, c):\n        pass\n",
    "in-if": "import os\nif os.environ.get('X'):\n    def handler(e, c): return 1\n"
             "else:\n    def handler(e, c): return 2\n",
    "in-try": "try:\n    from fast import handler\nexcept ImportError:\n    def handler(e, c): return e\n",
    "walrus": "if (handler := print):\n    pass\n",
    "decorated": "import functools\n\n@functools.lru_cache\ndef handler(e, c):\n    return e\n",
}
PY_UNKNOWN = {
    "star-import": "from app.impl import *\n",
    "module-getattr": "def __getattr__(name):\n    return print\n",
    "globals": "globals()['handler'] = print\n",
    "setattr": "import sys\nsetattr(sys.modules[__name__], 'handler', print)\n",
    "exec": "exec('def handler(e, c): return e')\n",
    "syntax-newer-than-orch": "def handler(e, c):\n    return e\nx = (\n",
}
PY_MISSING = {
    "typo": "def handlr(event, context):\n    return event\n",
    "nested-only": "def outer():\n    def handler(e, c):\n        return e\n    return handler\n",
    "class-attribute": "class App:\n    handler = print\n",
    "annotation-without-value": "handler: object\n",
    "empty": "",
}

JS_EXPORTS = {
    "exports-dot": "exports.handler = async (event) => event;\n",
    "module-exports-dot": "module.exports.handler = function (event) { return event; };\n",
    "module-exports-object": "async function handler(e) { return e; }\nmodule.exports = { handler };\n",
    "module-exports-pair": "module.exports = { handler: async (e) => e, other: 1 };\n",
    "module-exports-method": "module.exports = { async handler(e) { return e; } };\n",
    "module-exports-string-key": "module.exports = { 'handler': (e) => e };\n",
    "exports-bracket": "exports['handler'] = (e) => e;\n",
    "chained": "exports = module.exports = { handler: (e) => e };\n",
    "define-property": "Object.defineProperty(exports, '__esModule', { value: true });\n"
                       "Object.defineProperty(exports, 'handler', { get: () => h });\nconst h = (e) => e;\n",
    "esm-function": "export function handler(event) { return event; }\n",
    "esm-async-function": "export async function handler(event) { return event; }\n",
    "esm-const": "export const handler = async (event) => event;\n",
    "esm-let": "export let handler = (event) => event;\n",
    "esm-var-many": "export var other = 1, handler = (e) => e;\n",
    "esm-class": "export class handler {}\n",
    "esm-clause-as": "const run = async (e) => e;\nexport { run as handler };\n",
    "esm-clause": "const handler = async (e) => e;\nexport { handler };\n",
    "esm-reexport": "export { run as handler } from './impl.mjs';\n",
    "esm-namespace": "export * as handler from './impl.mjs';\n",
    "typescript-commonjs-output": '"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\n'
                                  "exports.handler = void 0;\nconst handler = async (e) => e;\n"
                                  "exports.handler = handler;\n",
}
JS_UNKNOWN = {
    "module-exports-identifier": "const api = { handler: (e) => e };\nmodule.exports = api;\n",
    "module-exports-call": "module.exports = require('./impl');\n",
    "spread": "module.exports = { ...require('./impl') };\n",
    "computed-key": "const k = 'handler';\nmodule.exports = { [k]: (e) => e };\n",
    "computed-bracket": "const k = 'handler';\nexports[k] = (e) => e;\n",
    "object-assign": "Object.assign(exports, require('./impl'));\n",
    "esbuild-bundle": "var src_exports = {};\n__export(src_exports, { handler: () => handler });\n"
                      "module.exports = __toCommonJS(src_exports);\nasync function handler(e) { return e; }\n",
    "export-star": "export * from './impl.mjs';\n",
    "destructured": "export const { handler } = await import('./impl.mjs');\n",
    "syntax-error": "exports.handler = (e) => {\n",
}
JS_MISSING = {
    "typo-cjs": "exports.handlr = async (e) => e;\n",
    "typo-esm": "export async function handlr(e) { return e; }\n",
    "not-exported": "async function handler(e) { return e; }\n",
    "module-is-a-function": "module.exports = async function handler(e) { return e; };\n",
    "only-default": "export default async function handler(e) { return e; }\n",
    "read-not-write": "const x = exports.handler;\nexports.other = x;\n",
}


@pytest.mark.parametrize("source", PY_DEFINES.values(), ids=PY_DEFINES.keys())
def test_python_forms_that_define_the_handler(source: str) -> None:
    assert python_exports(source).has("handler") is True


@pytest.mark.parametrize("source", PY_UNKNOWN.values(), ids=PY_UNKNOWN.keys())
def test_python_forms_orch_cannot_read_do_not_fail(source: str) -> None:
    exports = python_exports(source)
    assert exports.has("handler") is None and exports.why_unknown


@pytest.mark.parametrize("source", PY_MISSING.values(), ids=PY_MISSING.keys())
def test_python_forms_without_the_handler(source: str) -> None:
    assert python_exports(source).has("handler") is False


@pytest.mark.parametrize("source", JS_EXPORTS.values(), ids=JS_EXPORTS.keys())
def test_javascript_forms_that_export_the_handler(source: str) -> None:
    exports = javascript_exports(source.encode())
    assert exports.has("handler") is True, exports


@pytest.mark.parametrize("source", JS_UNKNOWN.values(), ids=JS_UNKNOWN.keys())
def test_javascript_forms_orch_cannot_read_do_not_fail(source: str) -> None:
    exports = javascript_exports(source.encode())
    assert exports.has("handler") is None and exports.why_unknown, exports


@pytest.mark.parametrize("source", JS_MISSING.values(), ids=JS_MISSING.keys())
def test_javascript_forms_without_the_handler(source: str) -> None:
    exports = javascript_exports(source.encode())
    assert exports.has("handler") is False, exports


def test_python_user_code_is_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "app.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef handler(e, c):\n    return e\n")
    check_handler(tmp_path, "python3.12", "app.handler")
    assert not marker.exists()


def test_a_missing_python_function_names_the_file_the_function_and_a_close_match(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return event\n")
    with pytest.raises(PackageError) as err:
        check_handler(tmp_path, "python3.12", "app.handlr")
    text = str(err.value)
    assert str(tmp_path / "app.py") in text and "'handlr'" in text and "Did you mean 'handler'?" in text


def test_a_missing_node_export_names_the_file_and_the_export(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.mjs").write_text("export const main = async (e) => e;\n")
    with pytest.raises(PackageError) as err:
        check_handler(tmp_path, "nodejs22.x", "src/app.mian")
    assert str(tmp_path / "src" / "app.mjs") in str(err.value) and "'mian'" in str(err.value)
    check_handler(tmp_path, "nodejs22.x", "src/app.main")


def test_shipped_examples_pass(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    check_handler(repo / "functions" / "loopback", "python3.12", "handler.handler")
    check_handler(repo / "functions" / "loopback-node", "nodejs22.x", "index.handler")
