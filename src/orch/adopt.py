"""Adopting what an interrupted apply left in AWS but not in Terraform's state.

An apply that dies between an AWS call and Terraform saving its result leaves a resource
that exists but that the state does not know; the next apply tries to create it again and
fails (Lambda's `ResourceConflictException: Function already exist`, after minutes), or, for
a REST API (names are not unique), quietly makes a second one. This module knows every
resource orch's modules create for a stage (its Terraform address and the AWS identity it
will have), asks AWS (through a `Lookup`, orch.aws in real life) which of those exist outside
the state, and renders Terraform `import` blocks for them, so the next apply takes them over
and converges. It adopts only resources carrying this stage's `orch-stage` tag, or
sub-resources of one that does (or of one in the state). It never deletes anything, never
runs Terraform and never calls boto3 itself.

REST APIs: importing the API alone would make Terraform create its resources, methods and
responses again under it, which AWS refuses (`ConflictException`); so the whole tree under
the API is adopted too, path by path, method by method. Deployments are not adopted: they
have no name, a new one is created and the imported stage moves to it (an orphaned
deployment stays in the API, unused, as after any redeploy). Method settings are an update
of the stage, not an object of their own, so creating them again is harmless.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orch.aws import ApiTree, Found
from orch.config import Stage

STAGE_TAG = "orch-stage"
ADOPT_FILE = "orch-adopt.tf"

LAMBDA = "module.stack.module.lambda"
REST_API = "module.stack.module.rest_api"
INTEGRATION = "module.stack.module.integration"
STAGE = "module.stack.module.stage"

ROLE = f"{LAMBDA}.aws_iam_role.this"
ROLE_POLICY = f"{LAMBDA}.aws_iam_role_policy.logs"
LOG_GROUP = f"{LAMBDA}.aws_cloudwatch_log_group.this"
FUNCTION = f"{LAMBDA}.aws_lambda_function.this"
ALIAS = f"{LAMBDA}.aws_lambda_alias.this"
API = f"{REST_API}.aws_api_gateway_rest_api.this"
VALIDATOR = f"{REST_API}.aws_api_gateway_request_validator.parameters[0]"
API_STAGE = f"{STAGE}.aws_api_gateway_stage.this"
ACCESS_LOG_GROUP = f"{STAGE}.aws_cloudwatch_log_group.access[0]"
VALIDATOR_NAME = "required-parameters"  # modules/rest_api
ROLE_POLICY_NAME = "logs"  # modules/lambda

# What this catalogue expects the modules to declare: (module folder, resource type, name).
DECLARED = (
    ("lambda", "aws_iam_role", "this"),
    ("lambda", "aws_iam_role_policy", "logs"),
    ("lambda", "aws_cloudwatch_log_group", "this"),
    ("lambda", "aws_lambda_function", "this"),
    ("lambda", "aws_lambda_alias", "this"),
    ("rest_api", "aws_api_gateway_rest_api", "this"),
    ("rest_api", "aws_api_gateway_resource", "level_1"),
    ("rest_api", "aws_api_gateway_request_validator", "parameters"),
    ("rest_api", "aws_api_gateway_method", "this"),
    ("integration", "aws_api_gateway_integration", "this"),
    ("integration", "aws_api_gateway_method_response", "this"),
    ("integration", "aws_api_gateway_integration_response", "this"),
    ("integration", "aws_lambda_permission", "this"),
    ("stage", "aws_api_gateway_stage", "this"),
    ("stage", "aws_cloudwatch_log_group", "access"),
)


# ---------------------------------------------------------------------------- what AWS says


class Lookup(Protocol):
    """What adoption asks AWS (orch.aws.Aws answers; tests use a fake). Each answers None, an
    empty value or False when the object does not exist."""

    def find_role(self, name: str) -> Found | None: ...
    def has_role_policy(self, role: str, policy: str) -> bool: ...
    def find_log_group(self, name: str) -> Found | None: ...
    def find_function(self, name: str) -> Found | None: ...
    def has_alias(self, function: str, alias: str) -> bool: ...
    def permission_ids(self, function: str, qualifier: str) -> frozenset[str]: ...
    def find_rest_apis(self, name: str) -> list[Found]: ...
    def rest_api_tree(self, api_id: str) -> ApiTree: ...


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Import:
    """One resource to adopt: Terraform address, import id, and what it is, in words."""

    address: str
    id: str
    what: str


@dataclass(frozen=True)
class Adoption:
    """What adoption found: `imports` to render; `foreign` resources that have the names this
    stage's would have but are not this stage's (no or another `orch-stage` tag: left alone,
    Terraform will report the conflict); `extra` copies of this stage's REST API beyond the
    one adopted (left alone: orch never deletes)."""

    imports: tuple[Import, ...] = ()
    foreign: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    skipped: str = ""  # why nothing was checked (a project's own modules)

    @property
    def any(self) -> bool:
        return bool(self.imports)

    def notes(self) -> list[str]:
        """What to tell the person watching (one line each)."""
        lines = []
        if self.skipped:
            lines.append(self.skipped)
        if self.imports:
            lines.append(f"adopting {len(self.imports)} resource(s) that an interrupted run left in AWS but not in "
                         f"Terraform's state (import blocks in {ADOPT_FILE}):")
            lines += [f"  {item.what} ({item.address})" for item in self.imports]
        for item in self.foreign:
            lines.append(f"not adopted: {item}")
        for item in self.extra:
            lines.append(f"left alone: {item}")
        return lines


def belongs(found: Found, stage: str) -> bool:
    """Whether an object found in AWS carries this stage's `orch-stage` tag."""
    return found.tags.get(STAGE_TAG) == stage


# ---------------------------------------------------------------------------- reading the state


def state_resources(show_json: Mapping[str, Any]) -> dict[str, str]:
    """Managed resource address -> id, from `terraform show -json` of the state
    (https://developer.hashicorp.com/terraform/internals/json-format#values-representation)."""
    return {r["address"]: str((r.get("values") or {}).get("id", "")) for r in _managed(show_json)}


def _managed(show_json: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every managed resource of `terraform show -json`, through the child modules."""
    found: list[Mapping[str, Any]] = []

    def walk(module: Mapping[str, Any]) -> None:
        found.extend(r for r in module.get("resources") or () if r.get("mode", "managed") == "managed")
        for child in module.get("child_modules") or ():
            walk(child)

    walk(((show_json.get("values") or {}).get("root_module")) or {})
    return found


def tainted_resources(show_json: Mapping[str, Any]) -> list[str]:
    """Addresses of the managed resources `terraform show -json` marks `tainted`: after an
    interrupted run, the objects whose creation Terraform saw start but not end."""
    return [r["address"] for r in _managed(show_json) if r.get("tainted")]


# ---------------------------------------------------------------------------- the catalogue


def key(*parts: str) -> str:
    """An instance key of a for_each resource, as Terraform writes it: `["POST /"]`."""
    return "[" + json.dumps(" ".join(parts)) + "]"


def statement_id(method: str, route_key: str) -> str:
    """The Lambda permission's statement id modules/integration gives a route."""
    return f"apigateway-{method.lower()}-{hashlib.sha1(route_key.encode()).hexdigest()[:16]}"


def path_prefixes(paths: Iterable[str]) -> dict[str, int]:
    """Every non-root resource path the routes need -> its depth (modules/rest_api's levels)."""
    found: dict[str, int] = {}
    for path in paths:
        segments = [s for s in path.split("/") if s]
        for depth in range(1, len(segments) + 1):
            found["/" + "/".join(segments[:depth])] = depth
    return found


@dataclass(frozen=True)
class Route:
    """What a route makes orch's modules create: method and path, integration type, the
    status codes of its responses, whether a parameter is required."""

    method: str
    path: str
    proxy: bool
    statuses: tuple[str, ...]
    requires_parameters: bool

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def routes_of(stage: Stage) -> list[Route]:
    """The routes as orch renders them for modules/stack (orch.render.tfvars)."""
    from orch.render import PackageRef, tfvars

    values = tfvars(stage, PackageRef(""))
    return [
        Route(r.method, r.path, r.integration_type != "AWS", tuple(resp.status_code for resp in r.responses),
              any(r.request_parameters.values()))
        for r in values.api.routes
    ]


def modules_match(modules_dir: Path) -> str:
    """'' when `modules_dir` declares every resource this catalogue adopts, else why not
    (a project's own modules laid out differently: orch then adopts nothing)."""
    for folder, rtype, name in DECLARED:
        pattern = re.compile(rf'resource\s+"{rtype}"\s+"{name}"')
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted((modules_dir / folder).glob("*.tf"))]
        if not any(pattern.search(text) for text in texts):
            return (f"the modules in {modules_dir} do not declare {rtype}.{name} in {folder}/ as orch's do, "
                    "so orch does not adopt resources an interrupted run may have left in AWS")
    return ""


def find_orphans(stage: Stage, managed: Mapping[str, str], aws: Lookup, *, modules_dir: Path | None = None) -> Adoption:
    """What exists in AWS for `stage` but not in its state (`managed`: address -> id).

    Asks `aws` only about addresses the state lacks. Raises whatever the lookup raises
    (orch.aws: AwsError) when AWS cannot be asked.
    """
    if modules_dir is not None:
        why = modules_match(modules_dir)
        if why:
            return Adoption(skipped=why)
    finder = _Finder(stage, managed, aws)
    finder.function_side()
    finder.api_side()
    return Adoption(tuple(finder.imports), tuple(finder.foreign), tuple(finder.extra))


class _Finder:
    def __init__(self, stage: Stage, managed: Mapping[str, str], aws: Lookup) -> None:
        self.stage = stage
        self.managed = managed
        self.aws = aws
        self.imports: list[Import] = []
        self.foreign: list[str] = []
        self.extra: list[str] = []
        self.routes = routes_of(stage)

    def missing(self, address: str) -> bool:
        return address not in self.managed

    def add(self, address: str, import_id: str, what: str) -> None:
        self.imports.append(Import(address, import_id, what))

    def owned(self, address: str, found: Found | None, what: str) -> bool:
        """Whether the object at `address` is this stage's: in the state, or found with its tag
        (then adopted). Found without the tag: recorded as foreign."""
        if not self.missing(address):
            return True
        if found is None:
            return False
        if belongs(found, self.stage.name):
            self.add(address, found.id, what)
            return True
        tag = found.tags.get(STAGE_TAG)
        owner = f"tagged {STAGE_TAG}={tag}" if tag else f"without an {STAGE_TAG} tag"
        self.foreign.append(f"{what} exists in AWS {owner}, not {STAGE_TAG}={self.stage.name}; "
                            "rename or remove it so this stage can create its own")
        return False

    # ------------------------------------------------------------------ Lambda side

    def function_side(self) -> None:
        name = self.stage.function_name
        alias = self.stage.stage_name
        if self.missing(ROLE) or self.missing(ROLE_POLICY):
            role = self.aws.find_role(name) if self.missing(ROLE) else None
            if self.owned(ROLE, role, f"IAM role {name}") and self.missing(ROLE_POLICY):
                if self.aws.has_role_policy(name, ROLE_POLICY_NAME):
                    self.add(ROLE_POLICY, f"{name}:{ROLE_POLICY_NAME}",
                             f"inline policy {ROLE_POLICY_NAME} of role {name}")
        if self.missing(LOG_GROUP):
            group = f"/aws/lambda/{name}"
            self.owned(LOG_GROUP, self.aws.find_log_group(group), f"log group {group}")
        permissions = {r.key: f"{INTEGRATION}.aws_lambda_permission.this{key(r.key)}" for r in self.routes}
        wanted = [a for a in (FUNCTION, ALIAS, *permissions.values()) if self.missing(a)]
        if not wanted:
            return
        function = self.aws.find_function(name) if self.missing(FUNCTION) else None
        if not self.owned(FUNCTION, function, f"Lambda function {name}"):
            return
        if self.missing(ALIAS) and self.aws.has_alias(name, alias):
            self.add(ALIAS, f"{name}/{alias}", f"alias {alias} of {name}")
        todo = {k: a for k, a in permissions.items() if self.missing(a)}
        if todo:
            present = self.aws.permission_ids(name, alias)
            for route in self.routes:
                if route.key in todo:
                    sid = statement_id(route.method, route.key)
                    if sid in present:
                        self.add(todo[route.key], f"{name}:{alias}/{sid}", f"permission {sid} on {name}:{alias}")

    # ------------------------------------------------------------------ API Gateway side

    def children(self) -> list[str]:
        """Every address under the REST API that this stage's configuration creates."""
        found = [f"{REST_API}.aws_api_gateway_resource.level_{d}{key(p)}" for p, d in path_prefixes(
            r.path for r in self.routes).items()]
        if any(r.requires_parameters for r in self.routes):
            found.append(VALIDATOR)
        for route in self.routes:
            found.append(f"{REST_API}.aws_api_gateway_method.this{key(route.key)}")
            found.append(f"{INTEGRATION}.aws_api_gateway_integration.this{key(route.key)}")
            for status in route.statuses:
                found.append(f"{INTEGRATION}.aws_api_gateway_method_response.this{key(route.key, status)}")
                found.append(f"{INTEGRATION}.aws_api_gateway_integration_response.this{key(route.key, status)}")
        found.append(API_STAGE)
        if self.stage.config.stage.logging.access_logs:
            found.append(ACCESS_LOG_GROUP)
        return found

    def api_side(self) -> None:
        name = self.stage.api_name
        if not any(self.missing(a) for a in (API, *self.children())):
            return
        api_id = self.managed.get(API)
        if api_id is None:
            apis = sorted(self.aws.find_rest_apis(name), key=lambda a: a.created, reverse=True)
            ours = [a for a in apis if belongs(a, self.stage.name)]
            for other in apis:
                if not belongs(other, self.stage.name):
                    self.owned(API, other, f"REST API {name} ({other.id})")
            if not ours:
                return
            api_id = ours[0].id
            self.add(API, api_id, f"REST API {name} ({api_id})")
            for spare in ours[1:]:
                self.extra.append(f"REST API {name} ({spare.id}) is another copy tagged {STAGE_TAG}="
                                  f"{self.stage.name} that an earlier interrupted run left; orch adopted the newest "
                                  f"({api_id}) and never deletes: remove it with "
                                  f"`aws apigateway delete-rest-api --rest-api-id {spare.id}`")
        self.api_children(api_id)

    def api_children(self, api: str) -> None:
        tree = self.aws.rest_api_tree(api)
        for path, depth in path_prefixes(r.path for r in self.routes).items():
            address = f"{REST_API}.aws_api_gateway_resource.level_{depth}{key(path)}"
            if self.missing(address) and path in tree.resources:
                self.add(address, f"{api}/{tree.resources[path][0]}", f"API resource {path}")
        if any(r.requires_parameters for r in self.routes) and self.missing(VALIDATOR):
            if VALIDATOR_NAME in tree.validators:
                self.add(VALIDATOR, f"{api}/{tree.validators[VALIDATOR_NAME]}", f"request validator {VALIDATOR_NAME}")
        for route in self.routes:
            resource = tree.resources.get(route.path)
            method = resource[1].get(route.method) if resource else None
            if resource is None or method is None:
                continue
            base = f"{api}/{resource[0]}/{route.method}"
            address = f"{REST_API}.aws_api_gateway_method.this{key(route.key)}"
            if self.missing(address):
                self.add(address, base, f"method {route.key}")
            address = f"{INTEGRATION}.aws_api_gateway_integration.this{key(route.key)}"
            if self.missing(address) and method.integration:
                self.add(address, base, f"integration of {route.key}")
            for status in route.statuses:
                address = f"{INTEGRATION}.aws_api_gateway_method_response.this{key(route.key, status)}"
                if self.missing(address) and status in method.method_responses:
                    self.add(address, f"{base}/{status}", f"method response {status} of {route.key}")
                address = f"{INTEGRATION}.aws_api_gateway_integration_response.this{key(route.key, status)}"
                if self.missing(address) and status in method.integration_responses:
                    self.add(address, f"{base}/{status}", f"integration response {status} of {route.key}")
        stage_name = self.stage.stage_name
        if self.missing(API_STAGE) and stage_name in tree.stages:
            self.add(API_STAGE, f"{api}/{stage_name}", f"API stage {stage_name}")
        if self.stage.config.stage.logging.access_logs and self.missing(ACCESS_LOG_GROUP):
            group = f"API-Gateway-Access-Logs_{api}/{stage_name}"
            self.owned(ACCESS_LOG_GROUP, self.aws.find_log_group(group), f"access log group {group}")


# ---------------------------------------------------------------------------- rendering


def render_imports(adoption: Adoption) -> str:
    """The import blocks of `adoption` as a Terraform file (empty text when nothing to adopt)."""
    if not adoption.imports:
        return ""
    blocks = ["# Written by orch: resources an interrupted run left in AWS but not in Terraform's state.",
              "# Removed after the apply that adopts them succeeds.", ""]
    for item in adoption.imports:
        blocks += [f"# {item.what}", "import {", f"  to = {item.address}", f"  id = {_hcl_string(item.id)}", "}", ""]
    return "\n".join(blocks)


def _hcl_string(value: str) -> str:
    """A quoted HCL string: JSON's escapes, plus `${` and `%{` escaped so they stay literal."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def write_imports(adoption: Adoption, workdir: Path) -> Path | None:
    """Write `orch-adopt.tf` into the working folder (or remove a stale one when there is
    nothing to adopt); the path written, or None."""
    path = workdir / ADOPT_FILE
    text = render_imports(adoption)
    if not text:
        path.unlink(missing_ok=True)
        return None
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
