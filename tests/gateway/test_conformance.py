"""The local gateway against API Gateway recordings made on real AWS (``ORCH_CONFORMANCE_DIR``).

One test per case file, all driven by the generic runner in ``tests/gateway/conformance.py``
(one moto server and one gateway for the whole run); the last test prints ``N/M cases pass``
with the JSON path of every difference. Under ``CI=true`` a missing folder fails; elsewhere
the cases are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tests.gateway import conformance
from tests.gateway.conftest import REGION

pytestmark = pytest.mark.conformance

RESULTS: dict[str, conformance.CaseResult] = {}


def _cases() -> list[Path]:
    return conformance.case_files(conformance.conformance_dir())


def _missing_reason() -> str | None:
    folder = conformance.conformance_dir()
    if not (folder / "apigw").is_dir() or not _cases():
        return f"conformance recordings not found at {folder}/apigw (set ORCH_CONFORMANCE_DIR)"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true requires them)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def conformance_env(aws, gateway_server, project_dir):
    backends = conformance.HttpBackends()
    yield conformance.Environment(aws, gateway_server.url, project_dir, REGION, backends)
    backends.close()


@pytest.mark.parametrize("case_path", _cases() or [None], ids=lambda p: p.stem if p else "no-cases")
def test_case(case_path, request):
    if case_path is None:
        _skip_or_fail(_missing_reason() or "no conformance cases")
    env = request.getfixturevalue("conformance_env")  # only when there is a case to run
    result = conformance.CaseRunner(env, case_path).run()
    RESULTS[result.name] = result
    assert result.passed, conformance.report([result])


def test_zz_summary(capsys):
    """Prints ``N/M cases pass`` and every difference (runs after the cases in this module)."""
    reason = _missing_reason()
    if reason:
        _skip_or_fail(reason)
    results = [RESULTS[p.stem] for p in _cases() if p.stem in RESULTS]
    with capsys.disabled():
        print("\n" + conformance.report(results))
    assert len(results) == len(_cases()), "run the whole module to get the summary"
    assert all(r.passed for r in results)


def test_runner_fails_and_names_the_path_of_a_changed_expected_value(
    tmp_path, monkeypatch, conformance_env
):
    """A copy of the folder with one recorded value changed makes the runner fail, naming the
    JSON path of that value (and only that one)."""
    reason = _missing_reason()
    if reason:
        _skip_or_fail(reason)
    copy = tmp_path / "conformance"
    shutil.copytree(conformance.conformance_dir(), copy)
    case_path = copy / "apigw" / "case_1.json"
    case_path.chmod(0o644)
    case = json.loads(case_path.read_text())
    case["expected"]["by_snapshot_key"]["lambda-aws-integration-2"]["param1"] = "changed-by-test"
    case_path.write_text(json.dumps(case))
    monkeypatch.setenv("ORCH_CONFORMANCE_DIR", str(copy))

    paths = [p for p in conformance.case_files(conformance.conformance_dir()) if p.stem == "case_1"]
    results = list(conformance.run_cases(conformance_env, paths))
    text = conformance.report(results)
    assert "0/1 cases pass" in text, text
    assert results[0].problems == [
        'lambda-aws-integration-2: $.param1: expected "changed-by-test", got "foobar"'
    ], text


def test_missing_folder_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    for ci, outcome in (("true", "1 failed"), ("false", "1 skipped")):
        env = {**os.environ, "ORCH_CONFORMANCE_DIR": str(tmp_path / "nowhere"), "CI": ci}
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/gateway/test_conformance.py::test_case"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=300,
        )
        assert outcome in proc.stdout, proc.stdout + proc.stderr
        assert "nowhere" in proc.stdout, proc.stdout


# --- the comparer itself -----------------------------------------------------------------


def test_comparer_flags_real_differences_and_skips_only_volatile_fields():
    diff = conformance.diff
    expected = {"a": "1", "requestId": "<uuid:1>", "Host": "h", "n": {"x": None, "y": "<p:1>"}}
    assert diff(expected, {"a": "1", "requestId": "r", "n": {"x": None, "y": "any"}}) == []
    assert diff(expected, {"a": "2", "n": {"x": None, "y": 1}}) == ['$.a: expected "1", got "2"']
    assert diff(expected, {"a": "1", "n": {"y": 1}}) == ["$.n.x: missing (expected null)"]
    assert diff(expected, {"a": "1", "b": 0, "n": {"x": None, "y": 1}}) == ["$.b: unexpected (got 0)"]
    assert diff({"c-d": [1, {"e": 2}]}, {"c-d": [1, {"e": "2"}]}) == ['$["c-d"][1].e: expected 2, got "2"']
    assert diff({"s": 200}, {"s": "200"}) and diff({"s": True}, {"s": 1})


def test_comparer_checks_key_order_only_under_the_named_members():
    diff = conformance.diff
    ordered = frozenset({"Body"})
    assert diff({"Body": {"a": 1, "b": 2}}, {"Body": {"b": 2, "a": 1}}, ordered_under=ordered)
    assert diff({"x": {"a": 1, "b": 2}}, {"x": {"b": 2, "a": 1}}, ordered_under=ordered) == []
    # ignored keys do not count for the order either
    assert diff(
        {"Body": {"a": 1, "requestId": "r", "b": 2}},
        {"Body": {"requestId": "q", "a": 1, "b": 2}},
        ordered_under=ordered,
    ) == []


def test_case_ignore_and_also_check_keys():
    ignore = conformance.Ignore.for_case({"ignore_keys": ["Connection"], "also_check_keys": ["x-amzn-trace-id"]})
    assert ignore("connection") and ignore("Date") and ignore("CloudFront-Is-Mobile-Viewer")
    assert not ignore("X-Amzn-Trace-Id") and not ignore("Content-Type")


def test_normalise_parses_json_text_like_the_recorder_but_not_inside_lists():
    value = {"body": '{"a": "{\\"b\\": 1}"}', "list": ['{"c": 1}'], "text": "{not json"}
    assert conformance.normalise(value) == {"body": {"a": {"b": 1}}, "list": ['{"c": 1}'], "text": "{not json"}
