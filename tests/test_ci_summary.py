"""Plan summaries (orch.ci.summary): grouping a real saved plan's changes, the package file
diff (text, binary, added, removed, too large), and the size bound GitHub imposes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from orch.ci.summary import MARKER, MAX_CHARS, TEXT_DIFF_LIMIT, StageSummary, markdown, package_diff
from orch.tfplan import PlanView

DATA = Path(__file__).resolve().parent / "data"


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_package_diff_kinds() -> None:
    big = b"x\n" * (TEXT_DIFF_LIMIT // 2 + 1)
    before = zipped({"a.py": b"one\ntwo\n", "gone.py": b"x\n", "img.png": b"\x89PNG\0\1", "same.txt": b"s",
                     "big.txt": big})
    after = zipped({"a.py": b"one\nTWO\nthree\n", "new.py": b"n\n", "img.png": b"\x89PNG\0\2", "same.txt": b"s",
                    "big.txt": big + b"y\n"})
    changes = {c.name: c for c in package_diff(before, after)}
    assert set(changes) == {"a.py", "gone.py", "img.png", "new.py", "big.txt"}
    assert (changes["a.py"].change, changes["a.py"].lines_added, changes["a.py"].lines_removed) == ("changed", 2, 1)
    assert changes["gone.py"].change == "removed" and changes["gone.py"].size_after is None
    assert changes["new.py"].change == "added" and changes["new.py"].lines_added == 1
    assert changes["img.png"].lines_added is None  # binary: sizes only
    assert changes["big.txt"].lines_added is None  # over the diff limit: sizes only


def test_a_real_plans_changes_are_grouped_by_what_happens() -> None:
    plan = PlanView.from_show_json(json.loads((DATA / "plan-remove-route.json").read_text()))
    summary = StageSummary.of("dev", "sandbox", plan, None)
    assert summary.changes["replace"] == ("module.stack.module.stage.aws_api_gateway_deployment.this",)
    assert summary.changes["change"] == ("module.stack.module.stage.aws_api_gateway_stage.this",)
    assert 'module.stack.module.rest_api.aws_api_gateway_method.this["GET /extra"]' in summary.changes["destroy"]
    assert summary.changes["add"] == ()
    text = markdown([summary], title="t")
    assert text.startswith(MARKER + "\n### t")
    assert f"| dev | sandbox | 0 | 1 | 1 | {len(summary.changes['destroy'])} | {plan.text()} |" in text
    assert '- `- module.stack.module.rest_api.aws_api_gateway_method.this["GET /extra"]`' in text


def test_the_summary_stays_under_githubs_limit() -> None:
    plan = PlanView.from_show_json(json.loads((DATA / "plan-first-deploy.json").read_text()))
    summaries = [StageSummary.of(f"stage{i}", "aws", plan, None) for i in range(200)]
    text = markdown(summaries, title="many")
    assert len(text) <= MAX_CHARS + 200 and text.startswith(MARKER) and "summary cut at 60,000 characters" in text
