"""orch.adopt: what an interrupted apply left in AWS outside Terraform's state, and the import
blocks that adopt it (issue 12, kind 1). AWS is a fake Lookup holding what the sandbox held
after the kills tried in bench/faults.py; the real round trip (kill, adopt, converge) runs
there and in tests/integration."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch import adopt
from orch.adopt import (
    ALIAS,
    API,
    API_STAGE,
    FUNCTION,
    INTEGRATION,
    LOG_GROUP,
    REST_API,
    ROLE,
    ROLE_POLICY,
    VALIDATOR,
    Adoption,
    find_orphans,
    key,
    render_imports,
    state_resources,
    statement_id,
)
from orch.aws import ApiTree, Found, MethodInfo
from orch.config import load_stage
from orch.resources import PACKAGED_MODULES

FN = "orch-loopback-dev"
TAGS = {"orch-stage": "dev", "project": "orch"}
POST = MethodInfo(True, frozenset({"200", "400", "500"}), frozenset({"200", "400", "500"}))


class FakeAws:
    """AWS as a lookup: what exists, with which tags; every question is recorded."""

    def __init__(self, *, tags: dict | None = None, apis: list[Found] | None = None,
                 tree: ApiTree | None = None, permissions: frozenset[str] = frozenset()) -> None:
        self.tags = TAGS if tags is None else tags
        self.apis = apis if apis is not None else [Found("api1", self.tags, 10.0)]
        self.tree = tree if tree is not None else ApiTree({"/": ("root1", {"POST": POST})}, {}, frozenset({"dev"}))
        self.permissions = permissions or frozenset({statement_id("POST", "POST /")})
        self.asked: list[str] = []

    def find_role(self, name: str) -> Found | None:
        self.asked.append(f"role {name}")
        return Found(name, self.tags)

    def has_role_policy(self, role: str, policy: str) -> bool:
        self.asked.append(f"policy {role} {policy}")
        return True

    def find_log_group(self, name: str) -> Found | None:
        self.asked.append(f"log group {name}")
        return Found(name, self.tags)

    def find_function(self, name: str) -> Found | None:
        self.asked.append(f"function {name}")
        return Found(name, self.tags)

    def has_alias(self, function: str, alias: str) -> bool:
        self.asked.append(f"alias {function} {alias}")
        return True

    def permission_ids(self, function: str, qualifier: str) -> frozenset[str]:
        self.asked.append(f"permissions {function}:{qualifier}")
        return self.permissions

    def find_rest_apis(self, name: str) -> list[Found]:
        self.asked.append(f"apis {name}")
        return self.apis

    def rest_api_tree(self, api_id: str) -> ApiTree:
        self.asked.append(f"tree {api_id}")
        return self.tree


def imports(result: Adoption) -> dict[str, str]:
    return {item.address: item.id for item in result.imports}


def test_everything_a_killed_first_apply_left_is_adopted(project: Path) -> None:
    """S3 state, the whole tree killed 5 s into creating: nothing reached the state."""
    stage = load_stage(project, "dev")
    result = find_orphans(stage, {}, FakeAws(), modules_dir=PACKAGED_MODULES)
    sid = statement_id("POST", "POST /")
    expected = {
        ROLE: FN, ROLE_POLICY: f"{FN}:logs", LOG_GROUP: f"/aws/lambda/{FN}", FUNCTION: FN, ALIAS: f"{FN}/dev",
        f"{INTEGRATION}.aws_lambda_permission.this{key('POST /')}": f"{FN}:dev/{sid}",
        API: "api1",
        f"{REST_API}.aws_api_gateway_method.this{key('POST /')}": "api1/root1/POST",
        f"{INTEGRATION}.aws_api_gateway_integration.this{key('POST /')}": "api1/root1/POST",
        API_STAGE: "api1/dev",
    }
    for status in ("200", "400", "500"):
        expected[f"{INTEGRATION}.aws_api_gateway_method_response.this{key('POST /', status)}"] = \
            f"api1/root1/POST/{status}"
        expected[f"{INTEGRATION}.aws_api_gateway_integration_response.this{key('POST /', status)}"] = \
            f"api1/root1/POST/{status}"
    assert imports(result) == expected
    assert result.foreign == () and result.extra == ()
    assert result.notes()[0].startswith("adopting 16 resource(s)")


def test_nothing_is_asked_when_the_state_has_it_all(project: Path) -> None:
    stage = load_stage(project, "dev")
    everything = find_orphans(stage, {}, FakeAws())
    managed = {item.address: item.id for item in everything.imports}
    aws = FakeAws()
    assert find_orphans(stage, managed, aws) == Adoption()
    assert aws.asked == []


def test_a_resource_without_the_stage_tag_is_never_adopted(project: Path) -> None:
    stage = load_stage(project, "dev")
    result = find_orphans(stage, {}, FakeAws(tags={"orch-stage": "prod"}))
    assert result.imports == ()
    assert any("Lambda function orch-loopback-dev exists in AWS tagged orch-stage=prod" in f for f in result.foreign)
    untagged = find_orphans(stage, {}, FakeAws(tags={}))
    assert untagged.imports == () and any("without an orch-stage tag" in f for f in untagged.foreign)


def test_sub_resources_follow_a_parent_that_is_in_the_state(project: Path) -> None:
    """Killed after the API was saved but before its method was: the method is adopted from
    the API in the state, never from another copy that has the same name."""
    stage = load_stage(project, "dev")
    aws = FakeAws(apis=[Found("newer", TAGS, 99.0)])
    result = find_orphans(stage, {API: "saved", ROLE: FN, ROLE_POLICY: "x", LOG_GROUP: "x", FUNCTION: FN,
                                  ALIAS: "x"}, aws)
    assert "tree saved" in aws.asked and "tree newer" not in aws.asked and f"apis {stage.api_name}" not in aws.asked
    assert imports(result)[f"{REST_API}.aws_api_gateway_method.this{key('POST /')}"] == "saved/root1/POST"
    assert API not in imports(result)


def test_of_several_copies_of_the_api_the_newest_is_adopted_and_the_others_named(project: Path) -> None:
    stage = load_stage(project, "dev")
    aws = FakeAws(apis=[Found("old", TAGS, 1.0), Found("new", TAGS, 2.0), Found("theirs", {}, 3.0)])
    result = find_orphans(stage, {}, aws)
    assert imports(result)[API] == "new"
    assert len(result.extra) == 1 and "(old)" in result.extra[0] and "delete-rest-api --rest-api-id old" in \
        result.extra[0]
    assert any("(theirs)" in f for f in result.foreign)


def test_deeper_paths_and_the_request_validator(project: Path) -> None:
    (project / "stages" / "deep.yaml").write_text(
        "api:\n  routes:\n    - method: GET\n      path: /a/{id}\n      parameters: {headers: {X-Key: true}}\n"
        "      integration: {type: AWS_PROXY}\n")
    stage = load_stage(project, "deep")
    tree = ApiTree({"/": ("r0", {}), "/a": ("r1", {}), "/a/{id}": ("r2", {"GET": MethodInfo(True)})},
                   {"required-parameters": "v1"}, frozenset())
    deep = {"orch-stage": "deep"}
    result = imports(find_orphans(stage, {}, FakeAws(tags=deep, apis=[Found("api1", deep)], tree=tree)))
    assert result[f"{REST_API}.aws_api_gateway_resource.level_1{key('/a')}"] == "api1/r1"
    assert result[f"{REST_API}.aws_api_gateway_resource.level_2{key('/a/{id}')}"] == "api1/r2"
    assert result[VALIDATOR] == "api1/v1"
    assert result[f"{INTEGRATION}.aws_api_gateway_integration.this{key('GET /a/{id}')}"] == "api1/r2/GET"
    assert not [a for a in result if "response" in a]  # a proxy route has none
    assert API_STAGE not in result  # not created yet


def test_import_blocks_are_terraform_and_keep_ids_literal() -> None:
    text = render_imports(Adoption((adopt.Import(FUNCTION, "odd${x}%{y}\"", "Lambda function"),)))
    assert f"  to = {FUNCTION}\n" in text
    assert '  id = "odd$${x}%%{y}\\""\n' in text
    assert render_imports(Adoption()) == ""


def test_write_imports_removes_a_stale_file(tmp_path: Path) -> None:
    one = Adoption((adopt.Import(FUNCTION, FN, "f"),))
    assert adopt.write_imports(one, tmp_path) == tmp_path / adopt.ADOPT_FILE
    assert adopt.write_imports(Adoption(), tmp_path) is None
    assert not (tmp_path / adopt.ADOPT_FILE).exists()


def test_a_projects_own_modules_laid_out_differently_are_left_alone(project: Path, tmp_path: Path) -> None:
    own = tmp_path / "modules"
    for folder in ("lambda", "rest_api", "integration", "stage"):
        (own / folder).mkdir(parents=True)
        (own / folder / "main.tf").write_text("# nothing orch knows\n")
    aws = FakeAws()
    result = find_orphans(load_stage(project, "dev"), {}, aws, modules_dir=own)
    assert result.imports == () and "do not declare aws_iam_role.this" in result.skipped and aws.asked == []
    assert adopt.modules_match(PACKAGED_MODULES) == ""


def test_state_resources_reads_show_json_through_child_modules() -> None:
    shown = {"format_version": "1.0", "values": {"root_module": {
        "resources": [{"address": "aws_x.top", "mode": "managed", "values": {"id": "t"}},
                      {"address": "data.aws_region.current", "mode": "data", "values": {"id": "r"}}],
        "child_modules": [{"address": "module.stack", "resources": [], "child_modules": [
            {"address": "module.stack.module.lambda",
             "resources": [{"address": FUNCTION, "mode": "managed", "values": {"id": FN}}]}]}]}}}
    assert state_resources(shown) == {"aws_x.top": "t", FUNCTION: FN}
    assert state_resources({"format_version": "1.0"}) == {}


@pytest.mark.parametrize("route_key", ["POST /", "GET /a/{id}", "ANY /{proxy+}"])
def test_statement_ids_are_the_modules(route_key: str) -> None:
    """modules/integration: "apigateway-${lower(method)}-${substr(sha1(key), 0, 16)}"."""
    import hashlib

    method = route_key.split()[0]
    assert statement_id(method, route_key) == \
        f"apigateway-{method.lower()}-{hashlib.sha1(route_key.encode()).hexdigest()[:16]}"
    assert 'statement_id  = "apigateway-${lower(each.value.method)}-${substr(sha1(each.key), 0, 16)}"' in \
        (PACKAGED_MODULES / "integration" / "main.tf").read_text()
