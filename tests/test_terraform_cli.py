"""The real terraform binary accepts every flag orch passes it (and rejects -input where orch
must not pass it). Runs each verb, as orch's adapter builds it, in an empty folder: no
provider starts, so the whole file takes a second or two."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from orch import terraform as tf_mod
from orch.errors import TerraformError
from orch.terraform import Terraform, base_env, command_line, run_process

pytestmark = pytest.mark.terraform
UNKNOWN_FLAG = "flag provided but not defined"


@pytest.fixture
def binary() -> str:
    found = shutil.which("terraform")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("terraform is not on PATH; CI needs it")
        pytest.skip("terraform is not on PATH")
    return found


def test_terraform_accepts_every_flag_orch_passes(binary: str, tmp_path: Path, monkeypatch) -> None:
    rc = tmp_path / "terraformrc"
    rc.write_text("# empty\n")
    seen: list[tuple[list[str], str]] = []

    def recording(argv, *, cwd, env, on_stdout, on_stderr) -> int:
        err: list[str] = []
        code = run_process(argv, cwd=cwd, env=env, on_stdout=lambda line: err.append(line) or on_stdout(line),
                           on_stderr=lambda line: err.append(line) or on_stderr(line))
        seen.append((list(argv), "".join(err)))
        return code

    monkeypatch.setattr(tf_mod, "run_process", recording)
    work = tmp_path / "empty"
    work.mkdir()
    tf = Terraform(work, binary=binary, env=base_env({"TF_CLI_CONFIG_FILE": str(rc)}), echo=lambda *a: None)
    plan_file = tmp_path / "missing.tfplan"
    for call in (lambda: tf.init("x"), lambda: tf.plan(plan_file), lambda: tf.show_plan(plan_file),
                 tf.apply, lambda: tf.apply(replace=["a.b"]), lambda: tf.apply_saved(plan_file), tf.destroy,
                 tf.output):
        try:
            call()
        except TerraformError:
            pass  # an empty folder cannot be planned or applied; only the flags matter here
    verbs = [argv[1] for argv, _ in seen]
    assert verbs == ["version", "init", "plan", "show", "apply", "apply", "apply", "destroy", "output"]
    for argv, output in seen:
        assert UNKNOWN_FLAG not in output, f"{' '.join(argv)} was refused:\n{output}"


@pytest.mark.parametrize("verb", ["show", "output"])
def test_show_and_output_reject_input_false(binary: str, tmp_path: Path, verb: str) -> None:
    """Why command_line leaves -input=false off these two verbs."""
    argv = command_line(binary, verb, options={"input": False, "json": True}, is_tty=False)
    assert "-input=false" in argv
    err: list[str] = []
    code = run_process(argv, cwd=tmp_path, env=base_env(), on_stdout=err.append, on_stderr=err.append)
    assert code != 0 and f"{UNKNOWN_FLAG}: -input" in "".join(err)
    assert "-input=false" not in command_line(binary, verb, options={"json": True}, is_tty=False)
