"""Several stages in one command (`orch plan --all`, `orch apply --all`, `--stages a,b`, and
`orch ci`'s pull-request plans): concurrently, within the machine's cores.

This module owns the scheduling (threads; a stage whose `promote_from` stage is also
selected starts only after that one succeeded, and is skipped when it failed), each stage's
output prefix, turning each stage's error into its exit code, the summary table and the
overall exit code (orch.errors.worst). What a stage run does is the `work` callable it is
given: it knows nothing of Terraform or the sandbox. No module-level state.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from orch.errors import ExitCode, OrchError, worst
from orch.reporter import Console, ConsoleReporter, Reporter

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True)
class StageRun:
    """One stage's run: exit code, what it did in one line (`detail`), its wall time in
    seconds, and the value `work` returned (None when it failed or was skipped)."""

    stage: str
    code: int
    status: str  # ok, failed, skipped
    detail: str
    seconds: float = 0.0
    value: Any = None


Work = Callable[[str, Reporter], tuple[int, str, Any]]
"""(stage, its reporter) -> (exit code, one line for the table, a value for the caller)."""


def cores() -> int:
    """The cores this process may run on (its CPU affinity, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def prefix_width(stages: Sequence[str]) -> int:
    return max((len(s) for s in stages), default=0) + 2


def run_stages(
    stages: Sequence[str],
    work: Work,
    console: Console,
    *,
    after: Mapping[str, str | None] | None = None,
    workers: int | None = None,
) -> list[StageRun]:
    """Run `work` for every stage, at most `workers` (default: cores()) at once; return the
    runs in the order of `stages`.

    `after` maps a stage to the stage it must follow (its `promote_from`): when both are
    selected, it starts after that one succeeded and is skipped when that one failed. Each
    stage's lines carry a `[stage]` prefix. An OrchError in a stage is printed with the prefix
    and becomes that stage's exit code; other stages go on.
    """
    after = dict(after or {})
    width = prefix_width(stages)
    pending = list(dict.fromkeys(stages))
    done: dict[str, StageRun] = {}
    running: dict[Future[StageRun], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers or cores(), len(pending) or 1))) as pool:
        while pending or running:
            for stage in list(pending):
                first = after.get(stage)
                if first in pending or first in running.values():
                    continue  # waits for its promote_from stage
                pending.remove(stage)
                if first in done and done[first].status != OK:
                    done[stage] = StageRun(stage, ExitCode.OK, SKIPPED, f"skipped: {first} did not succeed")
                    console.err(f"{_prefix(stage, width)}orch: skipped because stage {first!r} did not succeed")
                    continue
                reporter = ConsoleReporter(console, prefix=_prefix(stage, width))
                running[pool.submit(_one, stage, work, reporter, console, width)] = stage
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = future.result()
    for stage in pending:  # only a cycle of promote_from can leave stages here
        done[stage] = StageRun(stage, ExitCode.CONFIG, FAILED, "promote_from forms a cycle")
    return [done[stage] for stage in dict.fromkeys(stages)]


def _prefix(stage: str, width: int) -> str:
    return f"[{stage}]".ljust(width) + " "


def _one(stage: str, work: Work, reporter: Reporter, console: Console, width: int) -> StageRun:
    started = time.monotonic()
    try:
        code, detail, value = work(stage, reporter)
    except OrchError as exc:
        head = _prefix(stage, width)
        console.err(f"{head}orch: {exc.title}: {exc.message}")
        if exc.hint:
            for line in exc.hint.splitlines():
                console.err(f"{head}{line}")
        return StageRun(stage, int(exc.exit_code), FAILED, exc.title, time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 - a bug in one stage must not hide the others' results
        console.err(f"{_prefix(stage, width)}orch: internal error (a bug in orch, please report it): "
                    f"{type(exc).__name__}: {exc}")
        return StageRun(stage, ExitCode.INTERNAL, FAILED, f"internal error: {type(exc).__name__}",
                        time.monotonic() - started)
    status = OK if code in (ExitCode.OK, ExitCode.CHANGES_PRESENT) else FAILED
    return StageRun(stage, code, status, detail, time.monotonic() - started, value)


def table(runs: Sequence[StageRun]) -> list[str]:
    """The summary table: stage, result, what it did, exit code, seconds."""
    rows = [("STAGE", "RESULT", "EXIT", "TIME", "DETAIL")]
    for run in runs:
        rows.append((run.stage, run.status, str(run.code), f"{run.seconds:.1f} s", run.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]


def exit_code(runs: Sequence[StageRun]) -> int:
    """The worst of the runs' exit codes (orch.errors.worst)."""
    return worst([run.code for run in runs])
