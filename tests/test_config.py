"""Unit tests: loading, merging and validating stage files."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.config import deep_merge, load_stage, stage_names
from orch.errors import ConfigError


def write(project: Path, name: str, text: str) -> None:
    (project / "stages" / name).write_text(text)


def test_repo_stages_load_and_differ(project: Path) -> None:
    assert stage_names(project) == ["dev", "prod"]
    dev, prod = load_stage(project, "dev"), load_stage(project, "prod")
    assert dev.function_name == "orch-loopback-dev"
    assert prod.function_name == "orch-loopback-prod"
    assert dev.config.region == prod.config.region == "ap-northeast-2"
    assert (dev.config.function.memory_size, prod.config.function.memory_size) == (128, 256)
    assert dev.config.stage.variables["env"] == "dev"
    assert prod.config.stage.variables["env"] == "prod"
    assert prod.config.protected and not dev.config.protected
    route = dev.config.api.routes[0]
    assert (route.method, route.path) == ("POST", "/")
    assert route.parameters.headers == {"Authorization": False}
    assert route.parameters.querystrings == {"deptno-param": False}


def test_stage_file_overrides_defaults_key_by_key(project: Path) -> None:
    write(project, "dev.yaml", "function:\n  timeout: 30\n  environment: {EXTRA: '1'}\n")
    dev = load_stage(project, "dev")
    assert dev.config.function.timeout == 30
    assert dev.config.function.memory_size == 128  # from defaults.yaml
    assert dev.config.function.environment == {"LOG_LEVEL": "info", "EXTRA": "1"}


def test_lists_are_replaced_not_merged() -> None:
    merged = deep_merge({"a": {"l": [1, 2], "k": 1}}, {"a": {"l": [3]}})
    assert merged == {"a": {"l": [3], "k": 1}}


@pytest.mark.parametrize(
    ("stage_yaml", "needles"),
    [
        ("function:\n  memmory_size: 256\n", ["dev.yaml", "function.memmory_size", "unknown key"]),
        ("function:\n  memory_size: big\n", ["dev.yaml", "function.memory_size", "integer"]),
        ("function:\n  memory_size: 64\n", ["dev.yaml", "function.memory_size", "greater than or equal to 128"]),
        ("function:\n  runtime: ruby3.2\n", ["dev.yaml", "function.runtime", "python3.12"]),
        ("stage:\n  variables: {bad: 'has space'}\n", ["dev.yaml", "stage.variables"]),
        ("api:\n  routes:\n    - {method: GET, path: users}\n", ["dev.yaml", "api.routes[0].path"]),
        ("api:\n  routes:\n    - {method: FETCH, path: /}\n", ["dev.yaml", "api.routes[0].method"]),
        ("backend: {type: s3}\n", ["dev.yaml", "backend", "bucket"]),
    ],
)
def test_invalid_values_name_file_and_field(project: Path, stage_yaml: str, needles: list[str]) -> None:
    write(project, "dev.yaml", stage_yaml)
    with pytest.raises(ConfigError) as info:
        load_stage(project, "dev")
    for needle in needles:
        assert needle in str(info.value)


def test_error_in_defaults_names_defaults_file(project: Path) -> None:
    text = (project / "stages" / "defaults.yaml").read_text().replace("timeout: 10", "timeout: 1000")
    write(project, "defaults.yaml", text)
    with pytest.raises(ConfigError, match=r"defaults.yaml: function.timeout"):
        load_stage(project, "dev")


def test_malformed_yaml_names_line(project: Path) -> None:
    write(project, "dev.yaml", "function:\n  memory_size: [128\n")
    with pytest.raises(ConfigError, match=r"dev.yaml:\d+:\d+: malformed YAML"):
        load_stage(project, "dev")


def test_duplicate_keys_are_refused(project: Path) -> None:
    write(project, "dev.yaml", "function:\n  timeout: 5\n  timeout: 6\n")
    with pytest.raises(ConfigError, match="duplicate key 'timeout'"):
        load_stage(project, "dev")


def test_unknown_stage_lists_known_ones(project: Path) -> None:
    with pytest.raises(ConfigError, match="Known stages: dev, prod"):
        load_stage(project, "staging")


def test_yaml_off_is_the_logging_level_not_false(project: Path) -> None:
    write(project, "dev.yaml", "stage:\n  logging: {level: OFF}\n")
    assert load_stage(project, "dev").config.stage.logging.level == "OFF"


def test_missing_function_source(project: Path) -> None:
    write(project, "dev.yaml", "function: {source: functions/nope}\n")
    with pytest.raises(ConfigError, match=r"dev.yaml: function.source: folder .*functions/nope does not exist"):
        load_stage(project, "dev")
