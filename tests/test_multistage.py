"""Several stages at once (orch.multistage) with fake work: concurrency within the cores,
promote_from order, prefixes, the summary table and the worst exit code."""

from __future__ import annotations

import io
import threading

from orch.errors import ExitCode, TerraformError, worst
from orch.multistage import FAILED, OK, SKIPPED, exit_code, run_stages, table
from orch.reporter import Console


def console() -> tuple[Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Console(out, err), out, err


def test_stages_run_at_the_same_time_up_to_the_worker_limit() -> None:
    both_inside = threading.Barrier(2, timeout=5)  # fails unless two stages are inside at once

    def work(stage, reporter):
        reporter.note(f"planning {stage}")
        both_inside.wait()
        return ExitCode.OK, f"{stage} planned", stage.upper()

    con, _, err = console()
    runs = run_stages(["dev", "prod"], work, con, workers=2)
    assert [(r.stage, r.status, r.value) for r in runs] == [("dev", OK, "DEV"), ("prod", OK, "PROD")]
    lines = err.getvalue().splitlines()
    assert "[dev]  orch:       planning dev" in lines and "[prod] orch:       planning prod" in lines


def test_one_worker_runs_them_one_after_the_other() -> None:
    alone = threading.Barrier(2, timeout=0.3)  # only passes if a second stage is inside at once
    met: list[str] = []

    def work(stage, reporter):
        try:
            alone.wait()
            met.append(stage)
        except threading.BrokenBarrierError:
            alone.reset()
        return ExitCode.OK, "", None

    run_stages(["a", "b", "c"], work, console()[0], workers=1)
    assert met == []


def test_promote_from_runs_after_its_stage_and_is_skipped_when_it_failed() -> None:
    order: list[str] = []

    def work(stage, reporter):
        order.append(stage)
        if stage == "dev":
            raise TerraformError("terraform apply failed (exit 1) in dev.", hint="Error: boom")
        return ExitCode.OK, "deployed", None

    con, _, err = console()
    runs = run_stages(["prod", "dev", "qa"], work, con, after={"prod": "dev", "qa": None}, workers=2)
    assert order.index("dev") < (order.index("prod") if "prod" in order else 99)
    assert "prod" not in order  # dev failed: prod is not applied
    by = {r.stage: r for r in runs}
    assert [r.stage for r in runs] == ["prod", "dev", "qa"]  # the order asked for
    assert by["dev"].status == FAILED and by["dev"].code == ExitCode.TERRAFORM
    assert by["prod"].status == SKIPPED and by["qa"].status == OK
    assert "[dev]  orch: terraform error: terraform apply failed" in err.getvalue()
    assert "[dev]  Error: boom" in err.getvalue()
    assert exit_code(runs) == ExitCode.TERRAFORM


def test_promote_from_success_lets_the_next_stage_run() -> None:
    order: list[str] = []

    def work(stage, reporter):
        order.append(stage)
        return ExitCode.OK, "deployed", None

    runs = run_stages(["prod", "dev"], work, console()[0], after={"prod": "dev"})
    assert order == ["dev", "prod"] and all(r.status == OK for r in runs)


def test_a_promote_from_cycle_is_reported_not_a_hang() -> None:
    runs = run_stages(["a", "b"], lambda s, r: (0, "", None), console()[0], after={"a": "b", "b": "a"})
    assert [r.code for r in runs] == [ExitCode.CONFIG, ExitCode.CONFIG]


def test_a_bug_in_one_stage_is_reported_and_the_others_finish() -> None:
    def work(stage, reporter):
        if stage == "dev":
            raise KeyError("x")
        return ExitCode.CHANGES_PRESENT, "plan: 1 to add", None

    con, _, err = console()
    runs = run_stages(["dev", "prod"], work, con)
    assert [r.code for r in runs] == [ExitCode.INTERNAL, ExitCode.CHANGES_PRESENT]
    assert "internal error" in err.getvalue() and "Traceback" not in err.getvalue()


def test_the_table_lists_every_stage() -> None:
    runs = run_stages(["dev", "prod"], lambda s, r: (0, f"plan: {s}", None), console()[0])
    lines = table(runs)
    assert lines[0].split() == ["STAGE", "RESULT", "EXIT", "TIME", "DETAIL"]
    assert lines[1].split()[:3] == ["dev", "ok", "0"] and lines[1].endswith("plan: dev")
    assert lines[2].split()[:3] == ["prod", "ok", "0"]


def test_worst_exit_code() -> None:
    assert worst([0, 0]) == 0
    assert worst([0, 2]) == 2
    assert worst([2, 4]) == 4
    assert worst([3, 130, 4]) == 130
    assert worst([]) == 0


# ---------------------------------------------------------------------------- the command line


def test_the_cli_needs_exactly_one_way_to_name_stages(project, capsys) -> None:
    from orch.cli import main

    project_args = ["--project", str(project)]
    assert main(["plan", *project_args]) == ExitCode.USAGE
    assert "Missing argument 'STAGE': give a STAGE, --all or --stages" in capsys.readouterr().err
    assert main(["plan", "dev", "--all", *project_args]) == ExitCode.USAGE
    assert "(got STAGE and --all)" in capsys.readouterr().err
    assert main(["apply", "--all", "--plan", "x.tfplan", *project_args]) == ExitCode.USAGE
    assert "--plan works with one STAGE" in capsys.readouterr().err
    assert main(["plan", "--stages", "dev,nope", *project_args]) == ExitCode.CONFIG
    assert "--stages dev,nope: unknown stage 'nope'" in capsys.readouterr().err
    assert not (project / ".orch").exists()  # refused before anything ran


def test_every_line_of_a_multi_line_terraform_message_carries_the_prefix() -> None:
    from orch.reporter import ConsoleReporter

    con, out, _ = console()
    ConsoleReporter(con, prefix="[dev] ").terraform("Outputs:\n  a = 1\n  b = 2", False)
    assert out.getvalue().splitlines() == ["[dev] Outputs:", "[dev]   a = 1", "[dev]   b = 2"]


def test_apply_all_passes_the_smoke_options_and_a_rolled_back_stage_is_exit_6(tmp_path) -> None:
    """orch apply --all / orch ci: a stage whose release failed its checks (the Deployer's
    verdict) fails in the table with exit 6; --no-smoke and --skip-promotion-check reach it."""
    from orch.deploy import ApplyOutcome
    from orch.errors import ExitCode
    from orch.releases import Verdict
    from orch.reporter import RecordingReporter
    from orch.stagework import StageWork

    calls: list[dict] = []

    class Deployer:
        def __init__(self, stage: str) -> None:
            self.stage = stage

        def apply(self, **options):
            calls.append(options)
            status = "rolled_back" if self.stage == "dev" else "passed"
            return ApplyOutcome(None, True, {"invoke_url": f"http://x/{self.stage}"},
                                verdict=Verdict(status, self.stage, "sandbox", reason="1 of 1 checks failed"))

    work = StageWork(tmp_path, sandbox=True, ask=lambda q: False)
    work.deployer = lambda stage, reporter, sandbox=None: Deployer(stage)  # type: ignore[method-assign]
    reporter = RecordingReporter()
    code, detail, _ = work.applier(smoke=False, skip_promotion_check=True)("dev", reporter)
    assert code == ExitCode.SMOKE and detail == "rolled back: http://x/dev"
    assert any("rolled back" in line for line in reporter.of("note"))
    assert work.applier()("prod", reporter)[:2] == (ExitCode.OK, "deployed (saved plan): http://x/prod")
    assert calls == [{"smoke": False, "skip_promotion_check": True}, {"smoke": True, "skip_promotion_check": False}]
