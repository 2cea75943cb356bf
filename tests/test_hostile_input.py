"""Stage files and function folders written to hurt orch (issue 12, kinds 4 and 5), and the
wording of validation errors (issue 11): exit 3 naming file and field, never a traceback,
and nothing outside the project read into a zip."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from helpers import assert_clean_failure, cli
from orch.config import aws_regions, load_stage
from orch.errors import ConfigError

CONFIG = 3


def write_stage(project: Path, name: str, data: str | bytes) -> Path:
    path = project / "stages" / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def packages(project: Path) -> list[str]:
    folder = project / ".orch" / "packages"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --------------------------------------------------------------------------- YAML that crashed orch


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        pytest.param(b"function:\n  name: \xff\xfe\n", ["dev.yaml:2:9: not valid UTF-8 (byte 0xff)"], id="utf8"),
        pytest.param("a: " + "[" * 500 + "]" * 500, ["dev.yaml:1:", "nested more than 32 levels"], id="deep-list"),
        pytest.param("a: " + "{x: " * 500 + "1" + "}" * 500, ["nested more than 32 levels"], id="deep-map"),
        pytest.param("function:\n  memory_size: " + "9" * 5000, ["dev.yaml:2:16", "integer too long to read"],
                     id="int-5000-digits"),
        pytest.param("function:\n  reserved_concurrency: 0x" + "f" * 5000,
                     ["function.reserved_concurrency", "about 6020 digits"], id="hex-int-huge"),
        pytest.param("? [a, b]\n: 1\n", ["dev.yaml:1:3", "found a list as a key"], id="complex-key"),
        pytest.param("a: &a [*a]\n", ["alias *a refers to the node that contains it"], id="recursive-alias"),
        pytest.param("x: !!timestamp 2024-13-45\n", ["cannot read this timestamp value"], id="bad-timestamp"),
        pytest.param("x: !!python/object:os.system {}\n", ["malformed YAML", "python/object"], id="unsafe-tag"),
        pytest.param("function:\n  <<: 5\n", ["dev.yaml:2:7", "for merging"], id="bad-merge"),
        pytest.param("- a\n- b\n", ["expected a mapping of settings at the top level, found list"], id="top-list"),
    ],
)
def test_hostile_yaml_is_a_clear_configuration_error(project: Path, text: str | bytes, needles: list[str]) -> None:
    write_stage(project, "dev.yaml", text)
    assert_clean_failure(cli("render", "dev", cwd=project), CONFIG, *needles)


def test_invalid_utf8_in_defaults_fails_orch_stages_clearly(project: Path) -> None:
    path = project / "stages" / "defaults.yaml"
    path.write_bytes(path.read_bytes().replace(b"Seoul", b"Seo\xc3ul"))
    result = cli("stages", cwd=project)
    assert_clean_failure(result, CONFIG, "defaults.yaml:4:", "not valid UTF-8 (byte 0xc3)")


@pytest.mark.parametrize(("kind", "needle"), [("device", "not a regular file"), ("folder", "Is a directory")])
def test_a_stage_file_that_is_not_a_file(project: Path, kind: str, needle: str) -> None:
    path = project / "stages" / "dev.yaml"
    path.unlink()
    if kind == "device":
        path.symlink_to("/dev/zero")  # would never end
    else:
        path.mkdir()
    assert_clean_failure(cli("render", "dev", cwd=project), CONFIG, "dev.yaml: ", needle)


def test_merge_keys_are_supported_and_own_keys_win(project: Path) -> None:
    write_stage(project, "dev.yaml", (
        "x-limits: &limits\n  timeout: 30\n  memory_size: 512\n"
        "function:\n  <<: *limits\n  memory_size: 1024\n"
    ))
    fn = load_stage(project, "dev").config.function
    assert (fn.timeout, fn.memory_size) == (30, 1024)
    write_stage(project, "dev.yaml", "function:\n  <<: {timeout: 30}\n  timeout: 5\n  timeout: 6\n")
    with pytest.raises(ConfigError, match="duplicate key 'timeout'"):
        load_stage(project, "dev")


# --------------------------------------------------------------------------- values Terraform or AWS would refuse


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("region: zz-fake-9\n", ["dev.yaml: region: 'zz-fake-9' is not an AWS region", "botocore"]),
        ("region: ap-northeast-9\n", ["did you mean 'ap-northeast-3'"]),
        ("backend: {type: s3, bucket: b, region: mars-1}\n", ["dev.yaml: backend.region: 'mars-1'"]),
        ("function:\n  reserved_concurrency: 99999999999999999999\n",
         ["dev.yaml: function.reserved_concurrency", "less than or equal to 2147483647"]),
        ("function:\n  environment:\n    BIG: '" + "x" * 5000 + "'\n",
         ["function.environment", "Lambda allows 4096 in all"]),
        ("tags:\n  aws:owner: me\n", ["dev.yaml: tags", "aws: prefix is reserved"]),
        ("tags:\n  k: '" + "v" * 300 + "'\n", ["dev.yaml: tags", "values at most 256"]),
    ],
)
def test_values_aws_would_refuse_are_caught_at_config_time(project: Path, text: str, needles: list[str]) -> None:
    write_stage(project, "dev.yaml", text)
    assert_clean_failure(cli("render", "dev", cwd=project), CONFIG, *needles)


def test_regions_come_from_botocore_in_every_partition(project: Path) -> None:
    regions = aws_regions()
    assert {"ap-northeast-2", "us-east-1", "cn-north-1", "us-gov-west-1"} <= regions
    assert "zz-fake-9" not in regions
    write_stage(project, "dev.yaml", "region: us-gov-west-1\n")
    assert load_stage(project, "dev").config.region == "us-gov-west-1"


# --------------------------------------------------------------------------- orch's words, not pydantic's


@pytest.mark.parametrize(
    ("text", "wanted", "unwanted"),
    [
        ("function:\n  enviroment: {}\n", "function.enviroment: unknown key; did you mean `environment`?", None),
        ("functoin: {}\n", "functoin: unknown key; did you mean `function`?", None),
        ("api:\n  routes:\n    - {method: GET, pth: /}\n", "api.routes[0].pth: unknown key; did you mean `path`?",
         None),
        ("function:\n  zzz: 1\n", "function.zzz: unknown key (known here: environment, handler,", None),
        ("function:\n  environment:\n    PORT: 8080\n",
         "function.environment.PORT: should be text, but YAML read the unquoted value as a number; "
         "put it in quotes", "valid string"),  # an environment value may be a secret: never shown
        ("stage:\n  variables:\n    debug: yes\n",
         "stage.variables.debug: should be text, but YAML read the unquoted value as the boolean true", None),
        ("function: 5\n", "function: should be a mapping of settings (`key: value` lines), not a number",
         "instance of FunctionConfig"),
        ("api:\n  routes:\n    - 5\n", "api.routes[0]: should be a mapping of settings", "instance of Route"),
        ("api:\n  routes: {a: 1}\n", "api.routes: should be a list (lines starting with `- `), not a mapping", None),
        ("stage:\n  variables: {bad: has space}\n", "stage.variables: stage variable 'bad' has characters",
         "Value error"),
    ],
)
def test_validation_errors_speak_yaml(project: Path, text: str, wanted: str, unwanted: str | None) -> None:
    write_stage(project, "dev.yaml", text)
    result = cli("plan", "dev", cwd=project)
    assert_clean_failure(result, CONFIG, "dev.yaml: " + wanted)
    if unwanted:
        assert unwanted not in result.output


# --------------------------------------------------------------------------- packaging stays inside the project


@pytest.mark.parametrize("source", ["/etc", "../../elsewhere", "functions/../..", "functions/escape"])
def test_a_function_source_outside_the_project_is_refused(project: Path, tmp_path: Path, source: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "handler.py").write_text("SECRET = 'outside'\ndef handler(e, c):\n    return e\n")
    (project / "functions" / "escape").symlink_to(elsewhere, target_is_directory=True)
    write_stage(project, "dev.yaml", f"function:\n  source: {source}\n")
    for command in (["package", "dev"], ["render", "dev"]):
        result = cli(*command, cwd=project)
        assert_clean_failure(result, CONFIG, f"dev.yaml: function.source: '{source}'", "outside the project")
    assert packages(project) == []


def test_a_template_file_outside_the_project_is_refused(project: Path) -> None:
    write_stage(project, "dev.yaml", (
        "api:\n  routes:\n    - method: POST\n      integration: {request_template: {file: /etc/passwd}}\n"
    ))
    result = cli("render", "dev", cwd=project)
    assert_clean_failure(result, CONFIG, "api.routes[0].integration.request_template.file", "outside the project")
    assert "root:" not in result.output


def test_a_symlink_to_etc_passwd_in_the_function_folder_is_refused(project: Path) -> None:
    link = project / "functions" / "loopback" / "passwd"
    link.symlink_to("/etc/passwd")
    result = cli("package", "dev", cwd=project)
    assert_clean_failure(result, CONFIG, f"{link} is a symlink to /etc/passwd", "outside the folder")
    assert packages(project) == []
    link.unlink()
    (project / "functions" / "loopback" / "same.py").symlink_to("handler.py")  # inside: fine
    result = cli("package", "dev", cwd=project)
    assert result.code == 0, result.output
    with zipfile.ZipFile(result.stdout.split()[0]) as zf:
        assert zf.read("same.py") == zf.read("handler.py")


def test_an_undecodable_file_name_is_refused_by_name(project: Path) -> None:
    (project / "functions" / "loopback" / os.fsdecode(b"data-\xff.txt")).write_text("x")
    result = cli("package", "dev", cwd=project)
    assert_clean_failure(result, CONFIG, "data-\\xff.txt: the file name is not valid UTF-8")
    assert packages(project) == []
