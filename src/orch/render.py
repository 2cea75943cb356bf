"""Render a stage into a Terraform working folder: `backend.tf`, `main.tf`, `terraform.tfvars.json`.

This module turns a validated stage (orch.config) plus a built package into file contents
with Jinja2 (StrictUndefined), and writes them atomically. It does not run Terraform, build
packages or talk to AWS. A project may override any template by putting a file of the same
name in its own `templates/` folder (orch.resources owns that lookup).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from orch.config import Stage, TemplateFile, TemplateInline
from orch.errors import ConfigError
from orch.resources import modules_dir, passthrough_template, template_search_path

TEMPLATES = ("backend.tf", "main.tf", "terraform.tfvars.json")
ROOT_OUTPUTS = (
    "invoke_url",
    "rest_api_id",
    "function_name",
    "function_arn",
    "function_version",
    "alias_name",
    "alias_arn",
    "stage_name",
    "deployment_id",
    "execution_arn",
    "log_group_name",
)
SANDBOX_SERVICES = (
    "acm", "apigateway", "cloudwatch", "iam", "lambda", "logs", "s3", "sts",
)


@dataclass(frozen=True)
class Target:
    """Where a stage deploys: real AWS, or the sandbox emulator at `endpoint`."""

    name: str  # "aws" or "sandbox"
    endpoint: str | None = None

    @property
    def sandbox(self) -> bool:
        return self.name == "sandbox"


@dataclass(frozen=True)
class PackageRef:
    """Where Terraform finds the function code: a local zip or an S3 object."""

    sha256_b64: str
    filename: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None


def work_dir(project_dir: Path, stage: str, target: Target) -> Path:
    """The per-stage working folder; sandbox and real AWS never share one (or its state)."""
    return project_dir / ".orch" / "work" / target.name / stage


def request_template(stage: Stage, value: str | TemplateFile | TemplateInline) -> str:
    if isinstance(value, TemplateFile):
        path = stage.project_dir / value.file
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"template file {path}: cannot read it as UTF-8 text ({exc}).") from None
    if isinstance(value, TemplateInline):
        return value.inline
    return passthrough_template(stage.project_dir)  # the only built-in, validated by config


def tfvars(stage: Stage, package: PackageRef) -> dict[str, Any]:
    """The values handed to Terraform, in the shape modules/stack expects (docs/design.md)."""
    cfg = stage.config
    fn = cfg.function
    routes = []
    for route in cfg.api.routes:
        params: dict[str, bool] = {}
        for kind, names in (
            ("header", route.parameters.headers),
            ("querystring", route.parameters.querystrings),
            ("path", route.parameters.paths),
        ):
            for pname, required in names.items():
                params[f"method.request.{kind}.{pname}"] = required
        for pname in _path_params(route.path):
            params.setdefault(f"method.request.path.{pname}", True)
        integ = route.integration
        text = request_template(stage, integ.request_template) if integ.type == "AWS" else None
        templates = {ctype: text for ctype in integ.content_types} if text is not None else {}
        responses = [{"status_code": "200", "selection_pattern": "", "response_templates": {}}]
        for err in route.errors:
            responses.append(
                {
                    "status_code": str(err.status),
                    "selection_pattern": err.pattern,
                    "response_templates": {"application/json": err.template} if err.template else {},
                }
            )
        routes.append(
            {
                "method": route.method,
                "path": route.path,
                "request_parameters": params,
                "integration_type": integ.type,
                "request_templates": templates,
                "passthrough_behavior": integ.passthrough_behavior,
                "timeout_milliseconds": integ.timeout_milliseconds,
                "responses": responses if integ.type == "AWS" else [],
            }
        )
    return {
        "region": cfg.region,
        "stage_name": stage.stage_name,
        "tags": {**cfg.tags, "orch-stage": stage.name},
        "function": {
            "name": stage.function_name,
            "handler": fn.handler,
            "runtime": fn.runtime,
            "memory_size": fn.memory_size,
            "timeout": fn.timeout,
            "environment": dict(fn.environment),
            "log_retention_days": fn.log_retention_days,
            "reserved_concurrency": fn.reserved_concurrency,
            "package": {
                "filename": package.filename,
                "s3_bucket": package.s3_bucket,
                "s3_key": package.s3_key,
                "source_code_hash": package.sha256_b64,
            },
        },
        "api": {
            "name": stage.api_name,
            "description": cfg.api.description,
            "endpoint_type": cfg.api.endpoint_type,
            "routes": routes,
        },
        "stage_settings": {
            "variables": dict(cfg.stage.variables),
            "throttling_burst_limit": cfg.stage.throttling.burst_limit,
            "throttling_rate_limit": cfg.stage.throttling.rate_limit,
            "logging_level": cfg.stage.logging.level,
            "metrics_enabled": cfg.stage.logging.metrics,
            "data_trace_enabled": cfg.stage.logging.data_trace,
            "xray_tracing_enabled": cfg.stage.tracing,
            "access_logs_enabled": cfg.stage.logging.access_logs,
            "access_log_retention_days": fn.log_retention_days,
        },
    }


def _path_params(path: str) -> list[str]:
    return [part.strip("{}+") for part in path.split("/") if part.startswith("{")]


def _environment(project_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_search_path(project_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(stage: Stage, target: Target, package: PackageRef) -> dict[str, str]:
    """Render every file of the working folder in memory; nothing is written here."""
    folder = work_dir(stage.project_dir, stage.name, target)
    modules_source = os.path.relpath(modules_dir(stage.project_dir) / "stack", folder)
    if not modules_source.startswith("."):
        modules_source = "./" + modules_source
    values = tfvars(stage, package)
    backend = stage.config.backend.model_dump()
    if backend["type"] == "s3":  # in the sandbox: a bucket in the emulator's S3
        backend["key"] = backend["key"] or f"orch/{stage.config.project}/{stage.name}/terraform.tfstate"
        backend["region"] = backend["region"] or stage.config.region
    context = {
        **values,
        "stage": stage.name,
        "target": target.name,
        "backend": backend,
        "sandbox": {"endpoint": target.endpoint} if target.sandbox else None,
        "sandbox_services": SANDBOX_SERVICES,
        "modules_source": modules_source,
        "outputs": ROOT_OUTPUTS,
    }
    env = _environment(stage.project_dir)
    files: dict[str, str] = {}
    for name in TEMPLATES:
        template_name = f"{name}.j2"
        try:
            template = env.get_template(template_name)
            files[name] = template.render(context)
        except jinja2.UndefinedError as exc:
            raise ConfigError(
                f"template {_where(env, template_name)}: {exc.message}.",
                hint="The template refers to a value orch does not provide; "
                "see docs/design.md for the values a template can use.",
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"template {exc.filename or template_name}:{exc.lineno}: {exc.message}."
            ) from None
    try:
        json.loads(files["terraform.tfvars.json"])
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"template {_where(env, 'terraform.tfvars.json.j2')} rendered invalid JSON "
            f"(line {exc.lineno}: {exc.msg})."
        ) from None
    return files


def _where(env: jinja2.Environment, name: str) -> str:
    try:
        _, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        return filename or name
    except jinja2.TemplateNotFound:
        return name


def write(files: dict[str, str], folder: Path) -> list[str]:
    """Write rendered files atomically (temp file + rename); return the names that changed."""
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, content in files.items():
        path = folder / name
        if path.exists() and path.read_text(encoding="utf-8") == content:
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        changed.append(name)
    return changed
