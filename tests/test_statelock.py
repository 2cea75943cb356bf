"""Stale state locks (issue 12, kind 2): who holds the lock, read as JSON; the error after
Terraform's -lock-timeout; `orch unlock` refusing what it must. Local locks are real kernel
record locks held by a child process; S3 lock objects come from a fake reader (the real
S3 round trip, with a killed apply, is in bench/faults.py and tests/integration)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from orch import statelock, tfruns
from orch.errors import Aborted, ConfigError, TerraformError
from orch.executor import Executor
from orch.planner import plan_unlock
from orch.terraform import lock_timeout
from test_planner import World, deployed, names

LOCK = {"ID": "4b7870e7-898f-e4d2-2e28-a9d41251b425", "Operation": "OperationTypeApply", "Info": "",
        "Who": "ci@runner-7", "Version": "1.11.4", "Created": "2026-12-01T04:12:09.050941999Z",
        "Path": "orch-state/orch/orch/dev/terraform.tfstate"}


def hold_lock(workdir: Path) -> subprocess.Popen:
    """A process holding the local state's record lock, as Terraform does (fcntl F_SETLK)."""
    (workdir / statelock.LOCAL_INFO).write_text(json.dumps({**LOCK, "Path": "terraform.tfstate"}))
    (workdir / "terraform.tfstate").write_text("{}")
    code = textwrap.dedent(f"""
        import fcntl, sys
        f = open({str(workdir / "terraform.tfstate")!r}, "r+")
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("locked", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_lock_info_says_who_when_and_what() -> None:
    lock = statelock.LockInfo.from_json(LOCK, "s3://b/k.tflock")
    assert lock.text() == ("lock 4b7870e7-898f-e4d2-2e28-a9d41251b425, taken by ci@runner-7 for `terraform apply` "
                           "at 2026-12-01 04:12:09 UTC (Terraform 1.11.4)")
    odd = statelock.LockInfo.from_json(["not", "a", "mapping"], "x")
    assert odd.text() == "lock (no id), taken at an unknown time"


def test_a_local_lock_is_held_only_while_its_process_lives(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path)
    try:
        lock = statelock.read_local(tmp_path)
        assert lock is not None and lock.holder_pid == holder.pid and lock.id == LOCK["ID"]
        assert f"(pid {holder.pid})" in lock.text()
    finally:
        holder.communicate("")
    assert statelock.read_local(tmp_path) is None  # the info file stays, harmless: the kernel dropped the lock
    assert (tmp_path / statelock.LOCAL_INFO).exists()


class Objects:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def read_object(self, bucket: str, key: str) -> bytes | None:
        return self.objects.get(f"{bucket}/{key}")


def test_the_s3_lock_object_is_read_beside_the_state() -> None:
    reader = Objects({"orch-state/orch/orch/dev/terraform.tfstate.tflock": json.dumps(LOCK).encode()})
    lock = statelock.read_s3(reader, "orch-state", "orch/orch/dev/terraform.tfstate")
    assert lock is not None and lock.verb == "apply" and lock.where.endswith(".tfstate.tflock")
    assert statelock.read_s3(Objects({}), "orch-state", "orch/orch/dev/terraform.tfstate") is None


def s3_world(project: Path, **facts) -> World:
    (project / "stages" / "dev.yaml").write_text("backend: {type: s3, bucket: orch-state}\n")
    world = World(project, **facts)
    deployed(world)
    key = "orch-state/orch/orch/dev/terraform.tfstate.tflock"
    objects = Objects({key: json.dumps(LOCK).encode()})
    world.aws.read_object = objects.read_object  # type: ignore[attr-defined]
    return world


def test_a_run_that_fails_on_the_lock_names_its_holder_and_the_way_out(project: Path) -> None:
    world = s3_world(project)

    def locked_apply(*, replace=()):
        raise TerraformError("terraform apply failed (exit 1)", hint="Error acquiring the state lock")

    world.terraform.apply = locked_apply  # type: ignore[method-assign]
    with pytest.raises(statelock.StateLocked) as caught:
        world.run_apply()
    assert "the state of stage 'dev' is locked: lock 4b7870e7" in caught.value.message
    assert "by ci@runner-7 for `terraform apply` at 2026-12-01 04:12:09 UTC" in caught.value.message
    assert f"`orch unlock dev {LOCK['ID']} --sandbox`" in caught.value.hint
    assert caught.value.exit_code == 4


def test_unlock_forces_the_lock_open_and_marks_the_stage_for_adoption(project: Path) -> None:
    world = s3_world(project, yes=True)
    calls: list[str] = []
    world.terraform.force_unlock = lambda lock_id: calls.append(lock_id)  # type: ignore[attr-defined]
    plan = plan_unlock(world.stage, world.facts, LOCK["ID"])
    assert names(plan.steps)[-2:] == ["ReadLock", "ForceUnlock"]  # --yes: no question
    Executor(world.stage, world.collaborators(), world.reporter).execute(plan)
    assert calls == [LOCK["ID"]]
    [marked] = tfruns.records(world.facts.workdir)  # the next orch process finds it unfinished
    assert marked.verb == "unlock" and marked.changes_state and LOCK["ID"] in marked.note and not marked.alive


def test_unlock_refuses_another_lock_id(project: Path) -> None:
    world = s3_world(project, yes=True)
    world.terraform.force_unlock = lambda lock_id: pytest.fail("must not unlock")  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="is locked as '4b7870e7"):
        Executor(world.stage, world.collaborators(), world.reporter).execute(plan_unlock(world.stage, world.facts,
                                                                                          "someone-else"))


def test_unlock_refuses_while_a_process_of_this_project_holds_the_lock(project: Path) -> None:
    world = World(project, yes=True)
    deployed(world)
    world.terraform.force_unlock = lambda lock_id: pytest.fail("must not unlock")  # type: ignore[attr-defined]
    holder = hold_lock(world.facts.workdir)
    try:
        with pytest.raises(statelock.StateLocked, match=f"process {holder.pid} of this project still runs"):
            Executor(world.stage, world.collaborators(), world.reporter).execute(
                plan_unlock(world.stage, world.facts, LOCK["ID"]))
    finally:
        holder.communicate("")
    with pytest.raises(statelock.NotLocked, match="not locked"):
        Executor(world.stage, world.collaborators(), world.reporter).execute(
            plan_unlock(world.stage, world.facts, LOCK["ID"]))


def test_unlock_asks_first_and_refuses_without_a_terminal(project: Path) -> None:
    world = s3_world(project, interactive=True)
    world.terraform.force_unlock = lambda lock_id: pytest.fail("must not unlock")  # type: ignore[attr-defined]
    world.answers = [False]
    with pytest.raises(Aborted, match="was left as it is"):
        Executor(world.stage, world.collaborators(), world.reporter).execute(
            plan_unlock(world.stage, world.facts, LOCK["ID"]))
    assert world.questions[0].startswith(f"Force open the state lock of stage 'dev' (lock {LOCK['ID']}, taken by")
    with pytest.raises(Aborted, match="--yes"):
        plan_unlock(world.stage, replace(world.facts, interactive=False), LOCK["ID"])


def test_lock_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_LOCK_TIMEOUT", raising=False)
    assert lock_timeout() == "60s"
    monkeypatch.setenv("ORCH_LOCK_TIMEOUT", "5m")
    assert lock_timeout() == "5m"
    monkeypatch.setenv("ORCH_LOCK_TIMEOUT", "forever")
    with pytest.raises(ConfigError, match="ORCH_LOCK_TIMEOUT='forever'"):
        lock_timeout()
