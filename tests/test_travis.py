"""The Travis CI files (orch's own `.travis.yml` and the one `orch init` writes) checked
against Travis CI's own schema (../shared/travis), plus the policy the schema cannot check:
the `if:` conditions Travis accepts, plans only on pull requests, deploys only on main and
release tags, every deploy through `orch ci`, Terraform pinned with its checksum, a pip cache."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
import yaml

from helpers import REPO

SCHEMA = REPO.parent / "shared" / "travis" / "travis-yml.schema.json"
FILES = {"repository": REPO / ".travis.yml", "orch init": REPO / "src" / "orch" / "skeleton" / "travis.yml"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Yaml12Bools(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false (so a key `on:` stays the string 'on')."""


_Yaml12Bools.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Bools.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Bools)  # noqa: S506


def normalise(config: dict[str, Any]) -> dict[str, Any]:
    """Travis' shorthands in the long form its schema describes: `cache: pip` or `cache: [pip]`
    -> `{pip: true}`; a string `script`/`install`/`before_install` -> a one-item list."""
    config = dict(config)
    cache = config.get("cache")
    if isinstance(cache, str):
        config["cache"] = {cache: True}
    elif isinstance(cache, list):
        config["cache"] = {name: True for name in cache if isinstance(name, str)}
    jobs = dict(config.get("jobs") or {})
    if "include" in jobs:
        jobs["include"] = [_steps(job) for job in jobs["include"]]
        config["jobs"] = jobs
    return _steps(config)


def _steps(node: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    for key in ("before_install", "install", "script"):
        if isinstance(node.get(key), str) and node[key] != "skip":
            node[key] = [node[key]]
    return node


@pytest.fixture(scope="module")
def schema() -> dict:
    if not SCHEMA.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SCHEMA} is missing; CI must run with ../shared beside the clone")
        pytest.skip(f"Travis schema not found at {SCHEMA} (../shared is not beside this clone)")
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="module", params=list(FILES), ids=list(FILES))
def travis(request: pytest.FixtureRequest) -> dict:
    return normalise(load(FILES[request.param].read_text()))


def test_valid_against_travis_schema(schema: dict, travis: dict) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(travis), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_the_schema_check_can_fail(schema: dict) -> None:
    import jsonschema

    broken = normalise(load(FILES["repository"].read_text()) | {"dist": ["jammy"], "os": 7})
    assert list(jsonschema.Draft4Validator(schema).iter_errors(broken))


def test_shorthands_are_normalised_and_on_stays_a_key() -> None:
    config = normalise(load("cache: pip\nscript: make\ndeploy:\n  on:\n    branch: main\n"))
    assert config["cache"] == {"pip": True} and config["script"] == ["make"]
    assert config["deploy"] == {"on": {"branch": "main"}}  # PyYAML's own loader says {True: ...}
    assert yaml.safe_load("on: x") == {True: "x"}


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


def check_condition(cond: str) -> list[str]:
    """What Travis would refuse in one `if:` condition: a `$` outside quotes, a `type` other
    than push, pull_request, api, cron."""
    problems = []
    unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", cond)
    if "$" in unquoted:
        problems.append(f"unquoted $ in condition {cond!r}")
    for kind in re.findall(r"\btype\s*(?:=|!=|IN\s*\()\s*(\w+)", cond):
        if kind not in {"push", "pull_request", "api", "cron"}:
            problems.append(f"type {kind!r} in {cond!r}")
    return problems


def test_conditions_are_ones_travis_accepts(travis: dict) -> None:
    conditions = _conditions(travis)
    assert len(conditions) >= 3, "expected stage conditions (plan on PRs, apply on main and tags)"
    for cond in conditions:
        assert check_condition(cond) == []


def test_the_condition_check_can_fail() -> None:
    assert check_condition("branch = $MAIN")
    assert check_condition("type = pr")
    assert not check_condition("env(X) = '$literal' AND type = push")


def stage_jobs(travis: dict) -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (its `if:` condition, the script lines of its jobs)."""
    conditions = {s["name"]: s.get("if", "") for s in travis["stages"]}
    jobs: dict[str, tuple[str, list[str]]] = {}
    for job in travis["jobs"]["include"]:
        cond, lines = jobs.get(job["stage"], (conditions[job["stage"]], []))
        jobs[job["stage"]] = (cond, lines + list(job["script"]))
    return jobs


def test_plans_only_on_pull_requests_and_deploys_only_on_main_and_release_tags(travis: dict) -> None:
    for name, (cond, lines) in stage_jobs(travis).items():
        if name == "plan":
            assert cond == "type = pull_request" and lines == ["orch ci"]
        elif name.startswith("deploy"):
            assert "type = push" in cond and lines == ["orch ci"]
            assert "pull_request" not in cond
        else:  # checks: never orch ci without --dry-run, so nothing is planned or applied there
            assert all("orch ci" not in line or "--dry-run" in line for line in lines), (name, lines)
    stages = stage_jobs(travis)
    assert "branch = main" in stages["deploy dev"][0] and "tag =~ ^v" in stages["deploy prod"][0]
    assert "branch" not in stages["deploy prod"][0]  # on a tag build, branch is the tag's name


def test_terraform_is_pinned_with_its_checksum_and_pip_is_cached(travis: dict) -> None:
    env = dict(item.split("=", 1) for item in travis["env"]["global"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", env["TF_VERSION"]) and SHA256.match(env["TF_SHA256"])
    assert travis["before_install"] == ['bash scripts/install-terraform.sh "$TF_VERSION" "$TF_SHA256"']
    assert travis["cache"] == {"pip": True}
    assert "slack" not in (travis.get("notifications") or {})  # orch posts to the webhook itself


def test_the_repositorys_test_stage_runs_lint_and_the_readmes_tests() -> None:
    travis = normalise(load(FILES["repository"].read_text()))
    assert stage_jobs(travis)["test"][1] == ["bash .ci/run"]
    run = (REPO / ".ci" / "run").read_text()
    assert "ruff check src tests bench" in run and "python -m pytest" in run
    assert "secure" not in FILES["repository"].read_text()
