#!/usr/bin/env python3
"""How long one mapping-template render takes: airspeed's own ``Template.merge``, the
gateway's previous path (airspeed's evaluation with vtl.py's shortcuts installed on the
tree, ``vtl.render(..., engine="airspeed")``) and the compiled path ``vtl.render`` uses now
(``orch.gateway.vtlcompile``).

Templates: AWS's "Method Request passthrough" (``orch.render.passthrough_template``, what the
console offers and the gateway benchmark's stack uses) and, when the conformance cases are
there (``--conformance-dir``, default ``../shared/conformance``), the request templates of
cases 3 and 4 and the response template of case 3. Every render gets a new
``InputVariable`` for a realistic request: 6 headers, 2 query string parameters, one path
parameter and a small JSON body, as the gateway builds one per request; ``$context`` is
built once. Before timing, every path must give the same text for every template (exit 1
otherwise).

The paths are measured in interleaved rounds (each round times ``--renders`` renders of
every template on every path, in a rotating order) so that load on this shared machine hits
all of them alike; the median of the rounds is reported, per render, with the ratios.

    .venv/bin/python bench/vtl.py [--renders 2000] [--rounds 7]

Prints a table and, as its last line, a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import airspeed  # noqa: E402

from orch.gateway import vtl  # noqa: E402
from orch.render import passthrough_template  # noqa: E402

PARAMS = {
    "path": {"id": "42"},
    "querystring": {"deptno-param": "10", "q": "O'Neil & co"},
    "header": {
        "Accept": "application/json",
        "Authorization": "Bearer t0k3n",
        "Content-Type": "application/json",
        "Host": "127.0.0.1:9000",
        "User-Agent": "curl/8.5.0",
        "X-Forwarded-For": "127.0.0.1",
    },
}
BODY = json.dumps({"deptno": 10, "name": "O'Neil", "tags": ["a", "b"], "nested": {"ok": True}})
CASE_TEMPLATES = [  # (name, case file, where the template sits in the case's apigateway)
    ("case_3 request", "case_3.json", ("put_integration", "requestTemplates")),
    ("case_4 request", "case_4.json", ("put_integration", "requestTemplates")),
    ("case_3 response", "case_3.json", ("put_integration_response", "responseTemplates")),
]
PATHS = ("merge", "shortcuts", "compiled")


def _context() -> vtl.RootContext:
    return vtl.build_context(
        resource_id="res1",
        resource_path="/",
        http_method="POST",
        extended_request_id="ext=",
        request_time="26/Nov/2026:11:24:05 +0000",
        path="/dev/",
        account_id="123456789012",
        protocol="HTTP/1.1",
        stage="dev",
        domain_prefix="api1",
        request_time_epoch=1764156245000,
        request_id="c0ffee00-0000-4000-8000-000000000001",
        identity={"sourceIp": "127.0.0.1", "userAgent": "curl/8.5.0"},
        domain_name="127.0.0.1:9000",
        deployment_id="dep1",
        api_id="api1",
    )


def _find_template(document: object, step: str, kind: str) -> str | None:
    """The first ``application/json`` template under a ``step`` object of a case."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == step and isinstance(value, (dict, list)):
                for item in value if isinstance(value, list) else [value]:
                    templates = item.get(kind) if isinstance(item, dict) else None
                    if isinstance(templates, dict) and templates.get("application/json"):
                        return templates["application/json"]
            found = _find_template(value, step, kind)
            if found:
                return found
    elif isinstance(document, list):
        for value in document:
            found = _find_template(value, step, kind)
            if found:
                return found
    return None


def templates(conformance: Path) -> dict[str, str]:
    out = {"passthrough": passthrough_template(REPO)}
    for name, filename, (step, kind) in CASE_TEMPLATES:
        path = conformance / "apigw" / filename
        if path.is_file():
            found = _find_template(json.loads(path.read_text()).get("apigateway"), step, kind)
            if found:
                out[name] = found
    return out


def renderers(text: str, context: vtl.RootContext) -> dict[str, Callable[[], str]]:
    """One zero-argument render per path, each with a new InputVariable per call."""
    merged = airspeed.Template(text)  # a tree of its own: no shortcuts installed
    merged.ensure_compiled()
    stage_variables = {"env": "dev"}

    def merge() -> str:
        namespace = {
            "input": vtl.InputVariable(BODY, PARAMS),
            "context": context,
            "stageVariables": vtl.VtlMap(stage_variables),
            "util": vtl.UTIL,
        }
        return merged.merge(namespace)

    def render(engine: str) -> Callable[[], str]:
        def call() -> str:
            return vtl.render(
                text,
                input_var=vtl.InputVariable(BODY, PARAMS),
                context=context,
                stage_variables=stage_variables,
                engine=engine,
            )

        return call

    return {"merge": merge, "shortcuts": render("airspeed"), "compiled": render("compiled")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=2000, help="renders per path per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument(
        "--conformance-dir",
        type=Path,
        default=REPO.parent / "shared" / "conformance",
        help="where the conformance cases are (default ../shared/conformance)",
    )
    args = parser.parse_args()

    context = _context()
    found = templates(args.conformance_dir)
    calls = {name: renderers(text, context) for name, text in found.items()}
    for name, paths in calls.items():
        outputs = {path: call() for path, call in paths.items()}
        if len(set(outputs.values())) != 1:
            print(f"{name}: the paths render differently: {outputs}", file=sys.stderr)
            return 1
        if not vtl.compiled_fully(found[name]):
            print(f"note: {name} is not compiled (airspeed evaluates it)", file=sys.stderr)

    timings: dict[tuple[str, str], list[float]] = {}
    order = list(PATHS)
    for _ in range(args.rounds):
        for name, paths in calls.items():
            for path in order:
                call = paths[path]
                start = time.perf_counter()
                for _ in range(args.renders):
                    call()
                elapsed = time.perf_counter() - start
                timings.setdefault((name, path), []).append(elapsed / args.renders * 1e6)
        order = order[1:] + order[:1]

    summary: dict[str, dict[str, float]] = {}
    print(f"µs per render, median of {args.rounds} rounds of {args.renders} renders")
    print(f"{'template':<18}{'merge':>9}{'shortcuts':>11}{'compiled':>10}"
          f"{'vs merge':>10}{'vs shortcuts':>14}  compiled")
    for name in calls:
        us = {path: statistics.median(timings[(name, path)]) for path in PATHS}
        row = {f"{path}_us": round(us[path], 2) for path in PATHS}
        row["speedup_vs_merge"] = round(us["merge"] / us["compiled"], 2)
        row["speedup_vs_shortcuts"] = round(us["shortcuts"] / us["compiled"], 2)
        row["compiled_fully"] = vtl.compiled_fully(found[name])
        summary[name] = row
        print(
            f"{name:<18}{us['merge']:>9.1f}{us['shortcuts']:>11.1f}{us['compiled']:>10.1f}"
            f"{row['speedup_vs_merge']:>9.2f}x{row['speedup_vs_shortcuts']:>13.2f}x"
            f"  {row['compiled_fully']}"
        )
    print(json.dumps({"renders": args.renders, "rounds": args.rounds, "templates": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
