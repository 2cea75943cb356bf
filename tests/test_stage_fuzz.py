"""Property: every stage file gets exit 0 or 3 from orch, never a traceback (issue 12, kind 4).

Generated stage files (YAML text built from orch's own keys, hostile scalars and tags,
deep nesting, anchors and merge keys, complex keys, invalid UTF-8, raw bytes, and
mutations of this repository's real stage files) go through the real entry point,
in-process (`orch.cli.main`), for `orch stages` and `orch render`. `main` re-raises any
exception it does not expect, so a crash fails the test with its traceback. A fixed,
derandomized budget keeps the run the same on every machine and in CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from helpers import REPO, make_project
from orch.cli import main
from orch.config import StageConfig

BUDGET = settings(
    max_examples=250,
    derandomize=True,  # the same examples everywhere: a CI failure reproduces locally
    deadline=None,  # the machine is shared; time is not the property
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def _field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for arg in (info.annotation, *getattr(info.annotation, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _field_names(inner, seen)
    return names


KEYS = sorted(_field_names(StageConfig)) + ["x-common", "<<", "AWS_X", "PORT", "env", "Authorization"]
HOSTILE_SCALARS = [
    "8080", "-1", "0", "99999999999999999999", "0x" + "f" * 5000, "9" * 5000, "1e400", ".nan", "-.inf", "yes",
    "off", "OFF", "null", "~", "''", "2024-01-01", "!!timestamp 2024-13-45", "!!binary aGk=", "!!set {a, b}",
    "!!omap [a: 1]", "!!python/name:os.system", "!custom x", "*undefined", "/etc", "../..", "functions/loopback",
    "python3.12", "nodejs22.x", "POST", "/", "/{proxy+}", "AWS", "AWS_PROXY", "zz-fake-9", "ap-northeast-2",
    "handler.handler", "s3", "local", "REGIONAL", "'a\\0b'", '"\\x00"', '"\\ud800"', "{file: /etc/passwd}",
    "{inline: '#set($x = 1)'}", "passthrough", "&anchor 5", "[*anchor]",
]
SNIPPETS = [
    "? [a, b]\n: 1\n", "? {a: 1}\n: 2\n", "x-common: &c {timeout: 30}\nfunction:\n  <<: *c\n", "<<: *nothing\n",
    "a: &a [*a]\n", "---\na: 1\n---\nb: 2\n", "%YAML 1.3\n---\na: 1\n", "\t- tab\n",
    "function:\n  timeout: 5\n  timeout: 6\n",
    "function:\n  <<: [{timeout: 3}, {memory_size: 256}]\n", "\ufeffproject: bom\n", "a: !!int 12x\n",
]


def scalar() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_SCALARS),
        st.integers().map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=12).map(json.dumps),  # a double-quoted YAML scalar (JSON is YAML)
    )


def key() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=8).map(json.dumps), st.just("[a, b]"))


values = st.recursive(
    scalar(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(key(), inner), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=12,
)


PLAUSIBLE = {  # a leaf of the schema -> values that are often valid there
    "project": ["demo", "a-b", "Bad_Name"], "protected": ["true", "false"],
    "region": ["us-east-1", "eu-west-1", "cn-north-1"], "function.name": ["api", "x" * 49],
    "function.source": ["functions/loopback", "functions", "stages"], "function.handler": ["handler.handler", "a.b"],
    "function.runtime": ["python3.13", "nodejs20.x"], "function.memory_size": ["256", "10240", "127"],
    "function.timeout": ["30", "900", "0"], "function.environment.PORT": ["'8080'", "8080", "''"],
    "function.log_retention_days": ["7", "3653", "8"], "function.reserved_concurrency": ["-1", "0", "1000"],
    "api.name": ["shop", "a b"], "api.endpoint_type": ["EDGE", "PRIVATE"],
    "api.routes": ["[{method: GET, path: /items/{id}}]", "[{method: POST, path: /, integration: {type: AWS_PROXY}}]",
                   "[{method: GET, path: /, errors: [{status: 418, pattern: 'tea.*'}]}]", "[{method: get}]"],
    "stage.name": ["v1", "v-1"], "stage.variables.env": ["dev", "'a b'"], "stage.throttling.rate_limit": ["10.5"],
    "stage.logging.level": ["INFO", "OFF", "ERROR"], "stage.tracing": ["true"], "tags.team": ["team-a", "''"],
    "backend.type": ["local", "s3"], "backend.bucket": ["my-bucket"], "backend.region": ["us-east-1"],
    "artifacts.bucket": ["my-artifacts"],
}


def edit() -> st.SearchStrategy[tuple[str, str]]:
    return st.sampled_from(sorted(PLAUSIBLE)).flatmap(
        lambda path: st.tuples(st.just(path), st.one_of(*[st.sampled_from(PLAUSIBLE[path])] * 3, scalar()))
    )


def override(path: str, value: str) -> str:
    """`a.b.c` and a value as block YAML over this repository's dev.yaml."""
    parts = path.split(".")
    lines = [f"{'  ' * i}{part}:" for i, part in enumerate(parts[:-1])]
    lines.append(f"{'  ' * (len(parts) - 1)}{parts[-1]}: {value}")
    return "\n".join(lines) + "\n"


@st.composite
def stage_files(draw: st.DrawFn) -> bytes:
    """One stage file's bytes: about half are plausible edits of a real stage file."""
    kind = draw(st.sampled_from(["override"] * 5 + ["block", "nested", "snippet", "mutant", "bytes"]))
    if kind == "override":
        edits = draw(st.lists(edit(), min_size=1, max_size=3, unique_by=lambda pair: pair[0].split(".")[0]))
        return "".join(override(path, value) for path, value in edits).encode()
    if kind == "block":
        pairs = draw(st.lists(st.tuples(key(), values), min_size=1, max_size=6))
        return "".join(f"{k}: {v}\n" for k, v in pairs).encode()
    if kind == "nested":
        depth = draw(st.integers(min_value=1, max_value=600))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{x: ", "}"), ("- ", "")]))
        if opener == "- ":
            return ("api:\n" + "".join("  " * (i + 1) + "- \n" for i in range(depth)) + "  " * depth + "x\n").encode()
        return f"function: {opener * depth}1{closer * depth}\n".encode()
    if kind == "snippet":
        return "".join(draw(st.lists(st.sampled_from(SNIPPETS), min_size=1, max_size=3))).encode()
    if kind == "mutant":
        base = (REPO / "stages" / draw(st.sampled_from(["defaults.yaml", "dev.yaml", "prod.yaml"]))).read_bytes()
        lines = base.splitlines(keepends=True)
        at = draw(st.integers(min_value=0, max_value=len(lines)))
        indent = draw(st.sampled_from(["", "  ", "    ", "      "]))
        insert = f"{indent}{draw(key())}: {draw(values)}\n".encode()
        if draw(st.booleans()):
            insert = draw(st.sampled_from([b"\xff\xfe", b"\xc3", b"\x00", b"\x1b[31m", b"\r", b"'"])) + insert
        return b"".join(lines[:at]) + insert + b"".join(lines[at + 1:] if draw(st.booleans()) else lines[at:])
    return draw(st.binary(max_size=200))


@pytest.fixture(scope="module")
def fuzz_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("fuzz") / "proj")


def run(*args: str) -> int:
    return main(list(args))


@BUDGET
@given(data=stage_files(), target=st.sampled_from(["dev.yaml", "defaults.yaml"]))
def test_no_stage_file_crashes_orch(fuzz_project: Path, data: bytes, target: str) -> None:
    stages = fuzz_project / "stages"
    for name in ("defaults.yaml", "dev.yaml"):
        (stages / name).write_bytes((REPO / "stages" / name).read_bytes())
    (stages / target).write_bytes(data)
    for command in (["stages"], ["render", "dev", "--file", "terraform.tfvars.json"]):
        code = run(*command, "--project", str(fuzz_project))
        event(f"orch {command[0]}: exit {code}")  # see --hypothesis-show-statistics
        assert code in (0, 3), f"orch {' '.join(command)} exited {code} for {target}: {data[:300]!r}"


def test_the_generator_reaches_both_outcomes(fuzz_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Guard against a generator that only ever makes broken files (or only valid ones)."""
    (fuzz_project / "stages" / "defaults.yaml").write_bytes((REPO / "stages" / "defaults.yaml").read_bytes())
    valid = (REPO / "stages" / "dev.yaml").read_bytes() + b"x-common: &c {timeout: 30}\n"
    (fuzz_project / "stages" / "dev.yaml").write_bytes(valid)
    assert run("render", "dev", "--project", str(fuzz_project)) == 0
    (fuzz_project / "stages" / "dev.yaml").write_bytes(b"function: " + b"[" * 600 + b"]" * 600 + b"\n")
    assert run("render", "dev", "--project", str(fuzz_project)) == 3
    assert "nested more than" in capsys.readouterr().err
