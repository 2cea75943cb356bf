"""`.travis.yml` checked against Travis CI's own schema (../shared/travis), plus what it misses."""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml

from helpers import REPO

SCHEMA = REPO.parent / "shared" / "travis" / "travis-yml.schema.json"


class _Yaml12Bools(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false (so a key `on:` stays the string 'on')."""


_Yaml12Bools.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Bools.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


@pytest.fixture(scope="module")
def schema() -> dict:
    if not SCHEMA.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SCHEMA} is missing; CI must run with ../shared beside the clone")
        pytest.skip(f"Travis schema not found at {SCHEMA} (../shared is not beside this clone)")
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="module")
def travis() -> dict:
    return yaml.load((REPO / ".travis.yml").read_text(), Loader=_Yaml12Bools)  # noqa: S506


def test_valid_against_travis_schema(schema: dict, travis: dict) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(travis), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def _keys(schema: dict, node: dict, seen: set[str]) -> set[str]:
    """Property names (and their `aliases`) reachable through $ref/allOf/anyOf/oneOf."""
    ref = node.get("$ref")
    if ref:
        if ref in seen:
            return set()
        seen.add(ref)
        target = schema
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        return _keys(schema, target, seen)
    names = set()
    for name, prop in node.get("properties", {}).items():
        names.add(name)
        names.update(prop.get("aliases", []))
    for combinator in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(combinator, []):
            names |= _keys(schema, sub, seen)
    return names


def test_no_unknown_top_level_keys(schema: dict, travis: dict) -> None:
    """The schema lets unknown keys through (a typo like `langauge:` passes); we don't."""
    known = _keys(schema, schema, set())
    assert {"language", "python", "install", "script", "notifications"} <= known
    assert set(travis) <= known, set(travis) - known


def _conditions(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "if" and isinstance(value, str):
                found.append(value)
            found.extend(_conditions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_conditions(item))
    return found


def test_conditions_are_ones_travis_accepts(travis: dict) -> None:
    conditions = _conditions(travis)
    assert conditions, "expected stage conditions (plan on PRs, apply on main and tags)"
    for cond in conditions:
        unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", cond)
        assert "$" not in unquoted, f"unquoted $ in condition {cond!r}"
        for kind in re.findall(r"\btype\s*=\s*(\w+)", cond):
            assert kind in {"push", "pull_request", "api", "cron"}, cond


def test_pipeline_shape(travis: dict) -> None:
    stages = {s["name"]: s.get("if", "") for s in travis["stages"]}
    assert "pull_request" in stages["plan"]
    assert "branch = main" in stages["deploy dev"]
    jobs = {j["stage"]: j["script"] for j in travis["jobs"]["include"]}
    assert jobs["test"] == "bash .ci/run"
    assert any("smoke" in line for line in jobs["deploy dev"])
    assert "slack" in travis["notifications"]
