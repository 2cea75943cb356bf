"""orch.tfplan on JSON saved from the real terraform and the sandbox (tests/data/): counts as
in Terraform's own `Plan:` line, removed routes, replaced resources, outputs, diagnostics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orch.tfplan import ChangeCounts, JsonStream, PlanView

DATA = Path(__file__).resolve().parent / "data"
REMOVED_METHOD = 'module.stack.module.rest_api.aws_api_gateway_method.this["GET /extra"]'
DEPLOYMENT = "module.stack.module.stage.aws_api_gateway_deployment.this"


def show(name: str) -> PlanView:
    return PlanView.from_show_json(json.loads((DATA / name).read_text()))


def stream(name: str) -> JsonStream:
    return JsonStream.from_lines((DATA / name).read_text().splitlines())


def plan_line(name: str) -> str:
    """Terraform's own summary line, as it printed it for people."""
    match = re.search(r"^Plan: (.*)\.$", (DATA / name).read_text(), re.M)
    assert match, f"no Plan: line in {name}"
    return match.group(1)


@pytest.mark.parametrize("case", ["first-deploy", "remove-route"])
def test_counts_equal_terraforms_plan_line(case: str) -> None:
    assert show(f"plan-{case}.json").counts.text() == plan_line(f"plan-{case}.txt")


@pytest.mark.parametrize("case", ["first-deploy", "remove-route"])
def test_the_stream_counts_the_same_changes_as_the_saved_plan(case: str) -> None:
    from_stream = PlanView.from_stream(stream(f"apply-{case}.jsonl"))
    from_show = show(f"plan-{case}.json")
    assert from_stream.counts == from_show.counts
    assert sorted(from_stream.addresses("create", "update", "delete", "replace")) == sorted(
        from_show.addresses("create", "update", "delete", "replace"))
    # ... also when counted from the planned_change messages instead of change_summary
    recounted = PlanView(from_stream.resources)
    assert recounted.counts == from_show.counts


def test_a_removed_route_and_the_replaced_deployment() -> None:
    for plan in (show("plan-remove-route.json"), PlanView.from_stream(stream("apply-remove-route.jsonl"))):
        assert plan.removed_methods == [REMOVED_METHOD]
        assert plan.replaced == [DEPLOYMENT]
        assert plan.counts == ChangeCounts(add=1, change=1, destroy=11)
    first = show("plan-first-deploy.json")
    assert first.removed_methods == [] and first.replaced == []
    assert first.counts.add > 10 and first.counts.change == first.counts.destroy == 0


def test_no_op_apply_has_no_changes_but_reports_outputs() -> None:
    plan = PlanView.from_stream(stream("apply-no-op.jsonl"))
    assert not plan.has_changes and plan.text() == "no changes"
    assert plan.outputs["stage_name"] == "dev" and plan.outputs["invoke_url"].startswith("https://")
    assert stream("apply-no-op.jsonl").change_summary("apply") == ChangeCounts()


def test_outputs_come_from_the_message_with_values() -> None:
    applied = stream("apply-first-deploy.jsonl")
    outputs = applied.outputs()
    assert outputs["function_name"] == "orch-loopback-dev" and outputs["function_version"] == "1"
    first = show("plan-first-deploy.json")
    assert first.output_changes and first.outputs.get("stage_name") == "dev"  # known before apply


def test_replace_counts_as_one_add_and_one_destroy_and_data_sources_do_not_count() -> None:
    plan = PlanView.from_show_json({"resource_changes": [
        {"address": "a.x", "type": "a", "mode": "managed", "change": {"actions": ["delete", "create"]}},
        {"address": "a.y", "type": "a", "mode": "managed", "change": {"actions": ["create", "delete"]}},
        {"address": "a.z", "type": "a", "mode": "managed", "change": {"actions": ["update"]}},
        {"address": "data.a.r", "type": "a", "mode": "data", "change": {"actions": ["read"]}},
        {"address": "a.n", "type": "a", "mode": "managed", "change": {"actions": ["no-op"]}},
        {"address": "a.i", "type": "a", "mode": "managed", "change": {"actions": ["no-op"], "importing": {"id": "1"}}},
    ]})
    assert plan.counts == ChangeCounts(add=2, change=1, destroy=2, imports=1)
    assert plan.counts.text() == "1 to import, 2 to add, 1 to change, 2 to destroy"
    assert plan.replaced == ["a.x", "a.y"]
    only_data = PlanView.from_show_json({"resource_changes": [
        {"address": "data.a.r", "type": "a", "mode": "data", "change": {"actions": ["read"]}}]})
    assert not only_data.has_changes


def test_a_replaced_method_is_not_a_removed_route() -> None:
    plan = PlanView.from_show_json({"resource_changes": [
        {"address": "m", "type": "aws_api_gateway_method", "mode": "managed",
         "change": {"actions": ["delete", "create"]}}]})
    assert plan.removed_methods == [] and plan.replaced == ["m"]


def test_diagnostics_and_plain_lines() -> None:
    init = stream("init-no-provider.jsonl")
    assert [d.summary for d in init.errors] == ["Failed to query available provider packages"]
    assert "hashicorp/aws" in init.errors[0].detail
    stale = stream("apply-stale-plan.jsonl")
    assert [d.summary for d in stale.errors] == ["Saved plan is stale"]
    assert all(isinstance(line, str) for line in init.plain)  # plain lines kept, not parsed
