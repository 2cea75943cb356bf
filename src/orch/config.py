"""Stage configuration: load `stages/*.yaml`, merge, validate, and describe a stage.

This module owns the shape of a stage (pydantic models), the precedence of values and the
error messages for bad stage files. It reads files but never writes any, and knows nothing
about Terraform, AWS or the CLI.

Precedence, lowest to highest:
  1. defaults built into these models (documented in the README),
  2. `stages/defaults.yaml` (shared by every stage),
  3. `stages/<stage>.yaml` (only what differs for that stage).
Mappings merge key by key; lists and scalars from a higher level replace the lower one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orch.errors import ConfigError

DEFAULTS_FILE = "defaults.yaml"
STAGE_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
RUNTIMES = ("python3.11", "python3.12", "python3.13", "nodejs20.x", "nodejs22.x")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
BUILTIN_TEMPLATES = ("passthrough",)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
PATH_RE = re.compile(r"^/$|^(/([A-Za-z0-9._~-]+|\{[A-Za-z0-9_]+\}|\{[A-Za-z0-9_]+\+\}))+$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class FunctionConfig(_Strict):
    """The Lambda function."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$")] = "loopback"
    source: str = "functions/loopback"
    handler: Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]+\.[A-Za-z_][A-Za-z0-9_]*$")] = (
        "handler.handler"
    )
    runtime: Literal[RUNTIMES] = "python3.12"  # type: ignore[valid-type]
    memory_size: Annotated[int, Field(ge=128, le=10240)] = 128
    timeout: Annotated[int, Field(ge=1, le=900)] = 10
    environment: dict[str, str] = Field(default_factory=dict)
    log_retention_days: Literal[LOG_RETENTION_DAYS] = 14  # type: ignore[valid-type]
    reserved_concurrency: Annotated[int, Field(ge=-1)] = -1

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", key):
                raise ValueError(f"environment variable name {key!r} must match [A-Za-z][A-Za-z0-9_]*")
            if key.startswith("AWS_") or key.startswith("LAMBDA_"):
                raise ValueError(f"environment variable {key!r} is reserved by Lambda")
        return value


class Parameters(_Strict):
    """Method-request parameters: name -> required."""

    headers: dict[str, bool] = Field(default_factory=dict)
    querystrings: dict[str, bool] = Field(default_factory=dict)
    paths: dict[str, bool] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, bool]) -> dict[str, bool]:
        for key in value:
            if not HEADER_NAME_RE.match(key):
                raise ValueError(f"{key!r} is not a valid HTTP header name")
        return value


class TemplateFile(_Strict):
    file: str


class TemplateInline(_Strict):
    inline: str


class Integration(_Strict):
    """How API Gateway hands the request to the function."""

    type: Literal["AWS", "AWS_PROXY"] = "AWS"
    request_template: str | TemplateFile | TemplateInline = "passthrough"
    # The request template applies to each of these Content-Types (AWS selects by header;
    # a request without Content-Type uses application/json).
    content_types: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["application/json"]
    )
    passthrough_behavior: Literal["WHEN_NO_MATCH", "WHEN_NO_TEMPLATES", "NEVER"] = (
        "WHEN_NO_TEMPLATES"
    )
    timeout_milliseconds: Annotated[int, Field(ge=50, le=29000)] = 29000

    @field_validator("request_template")
    @classmethod
    def _builtin(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in BUILTIN_TEMPLATES:
            raise ValueError(
                f"{value!r} is not a built-in template (known: {', '.join(BUILTIN_TEMPLATES)}); "
                "use {file: path/to/template.vtl} or {inline: '...'} for your own"
            )
        return value


class ErrorMapping(_Strict):
    """A Lambda error message regex mapped to an HTTP status."""

    status: Annotated[int, Field(ge=200, le=599)]
    pattern: str
    template: str | None = None

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class Route(_Strict):
    method: Literal[HTTP_METHODS]  # type: ignore[valid-type]
    path: str = "/"
    parameters: Parameters = Field(default_factory=Parameters)
    integration: Integration = Field(default_factory=Integration)
    errors: list[ErrorMapping] = Field(default_factory=list)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not PATH_RE.match(value):
            raise ValueError(
                "must start with '/' and contain segments of letters, digits, '._~-', "
                "'{name}' or a final '{name+}'"
            )
        if value.count("/") > 8:
            raise ValueError("at most 8 path segments are supported")
        return value

    @model_validator(mode="after")
    def _path_params(self) -> Route:
        in_path = set(re.findall(r"\{([A-Za-z0-9_]+)\+?\}", self.path))
        unknown = set(self.parameters.paths) - in_path
        if unknown:
            raise ValueError(
                f"parameters.paths names {sorted(unknown)} which do not appear in path {self.path!r}"
            )
        return self


class ApiConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9 _.-]{1,100}$")] = "loopback"
    description: str = "Managed by orch"
    endpoint_type: Literal["REGIONAL", "EDGE", "PRIVATE"] = "REGIONAL"
    routes: Annotated[list[Route], Field(min_length=1)] = Field(
        default_factory=lambda: [Route(method="POST", path="/")]
    )

    @model_validator(mode="after")
    def _unique_routes(self) -> ApiConfig:
        seen: set[str] = set()
        for route in self.routes:
            key = f"{route.method} {route.path}"
            if key in seen:
                raise ValueError(f"route {key!r} is defined twice")
            seen.add(key)
        return self


class Throttling(_Strict):
    burst_limit: Annotated[int, Field(ge=0, le=5000)] = 100
    rate_limit: Annotated[float, Field(ge=0, le=10000)] = 50


class Logging(_Strict):
    level: Literal["OFF", "ERROR", "INFO"] = "OFF"
    metrics: bool = False
    data_trace: bool = False
    access_logs: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare OFF as the boolean false.
        return "OFF" if value is False else value


class StageSettings(_Strict):
    name: Annotated[str | None, Field(pattern=STAGE_NAME_RE.pattern)] = None
    variables: dict[str, str] = Field(default_factory=dict)
    throttling: Throttling = Field(default_factory=Throttling)
    logging: Logging = Field(default_factory=Logging)
    tracing: bool = False

    @field_validator("variables")
    @classmethod
    def _var_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not re.match(r"^[A-Za-z0-9_]+$", key):
                raise ValueError(f"stage variable name {key!r} must match [A-Za-z0-9_]+")
            if not re.match(r"^[A-Za-z0-9\-._~:/?#&=,]*$", val):
                raise ValueError(
                    f"stage variable {key!r} has characters API Gateway refuses "
                    "(allowed: letters, digits and -._~:/?#&=,)"
                )
        return value


class Backend(_Strict):
    type: Literal["local", "s3"] = "local"
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    use_lockfile: bool = True

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> Backend:
        if self.type == "s3" and not self.bucket:
            raise ValueError("backend type 's3' needs 'bucket'")
        return self


class Artifacts(_Strict):
    bucket: str | None = None
    prefix: str = "orch/packages/"


class StageConfig(_Strict):
    """Everything orch needs to deploy one stage."""

    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")] = "orch"
    protected: bool = False  # ask before `orch apply` changes this stage (unless --yes)
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")] = "ap-northeast-2"
    function: FunctionConfig = Field(default_factory=FunctionConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    stage: StageSettings = Field(default_factory=StageSettings)
    tags: dict[str, str] = Field(default_factory=dict)
    backend: Backend = Field(default_factory=Backend)
    artifacts: Artifacts = Field(default_factory=Artifacts)


@dataclass(frozen=True)
class Stage:
    """A validated stage and where its values came from."""

    name: str
    config: StageConfig
    project_dir: Path
    files: tuple[Path, ...]

    @property
    def stage_name(self) -> str:
        """The API Gateway stage name (the stage's own name unless `stage.name` is set)."""
        return self.config.stage.name or self.name

    @property
    def function_name(self) -> str:
        return f"{self.config.project}-{self.config.function.name}-{self.name}"

    @property
    def api_name(self) -> str:
        return f"{self.config.project}-{self.config.api.name}-{self.name}"

    @property
    def source_dir(self) -> Path:
        return (self.project_dir / self.config.function.source).resolve()


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one stage file; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror}).") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or "invalid YAML"
        raise ConfigError(
            f"{where}: malformed YAML: {problem}.",
            hint="Fix the file's syntax (indentation, quotes, colons) and run the command again.",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, found {type(data).__name__}."
        )
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into `base`: mappings key by key, everything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` that has a `stages/` folder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "stages").is_dir():
            return folder
    raise ConfigError(
        f"no stages/ folder found in {here} or any folder above it.",
        hint="Run orch from your project (the folder with stages/ and modules/), "
        "or pass --project PATH / set ORCH_PROJECT_DIR.",
    )


def stage_names(project_dir: Path) -> list[str]:
    """The stages defined in `stages/`: one `<name>.yaml` each, defaults excluded."""
    folder = project_dir / "stages"
    names = sorted(
        p.stem for p in folder.glob("*.yaml") if p.name != DEFAULTS_FILE and not p.name.startswith(".")
    )
    return names


def _locate(path: tuple[Any, ...], layers: list[tuple[Path, dict[str, Any]]]) -> Path | None:
    """The highest-precedence file that sets `path` (or its nearest existing parent)."""
    for depth in range(len(path), 0, -1):
        prefix = path[:depth]
        for file, data in reversed(layers):
            node: Any = data
            found = True
            for part in prefix:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                    node = node[part]
                else:
                    found = False
                    break
            if found:
                return file
    return None


def _format_errors(exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]], stage: str) -> str:
    lines = [f"stage {stage!r} is not valid:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        file = _locate(loc, layers)
        dotted = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
        dotted = dotted.replace(".[", "[") or "(top level)"
        where = str(file) if file else "stage files"
        kind = err["type"]
        if kind == "extra_forbidden":
            what = "unknown key (check the spelling; see the README for the known keys)"
        elif kind == "missing":
            what = "required but missing"
        else:
            what = err["msg"]
            if "input" in err and not isinstance(err["input"], (dict, list)):
                what += f" (got {err['input']!r})"
        lines.append(f"  {where}: {dotted}: {what}")
    return "\n".join(lines)


def load_stage(project_dir: Path, name: str) -> Stage:
    """Load, merge and validate one stage; raise ConfigError naming file and field on failure."""
    known = stage_names(project_dir)
    if name not in known:
        listing = ", ".join(known) if known else "none (add stages/<name>.yaml)"
        raise ConfigError(
            f"unknown stage {name!r}. Known stages: {listing}.",
            hint=f"Stages are the *.yaml files in {project_dir / 'stages'} (defaults.yaml excluded).",
        )
    if not STAGE_NAME_RE.match(name):
        raise ConfigError(
            f"stage file stages/{name}.yaml: the stage name must match [A-Za-z0-9_]{{1,64}} "
            "(API Gateway's rule for stage names)."
        )
    layers: list[tuple[Path, dict[str, Any]]] = []
    defaults = project_dir / "stages" / DEFAULTS_FILE
    if defaults.exists():
        layers.append((defaults, read_yaml(defaults)))
    stage_file = project_dir / "stages" / f"{name}.yaml"
    layers.append((stage_file, read_yaml(stage_file)))
    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = deep_merge(merged, data)
    try:
        config = StageConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, layers, name)) from None
    stage = Stage(name=name, config=config, project_dir=project_dir, files=tuple(p for p, _ in layers))
    _check_files(stage, layers)
    return stage


def _check_files(stage: Stage, layers: list[tuple[Path, dict[str, Any]]]) -> None:
    """Checks that need the file system: the function source and template files exist."""
    src = stage.source_dir
    if not src.is_dir():
        file = _locate(("function", "source"), layers)
        raise ConfigError(
            f"{file or 'stage files'}: function.source: folder {src} does not exist.",
            hint="Point function.source at the folder that holds your handler, relative to the project.",
        )
    for i, route in enumerate(stage.config.api.routes):
        tpl = route.integration.request_template
        if isinstance(tpl, TemplateFile):
            path = (stage.project_dir / tpl.file)
            if not path.is_file():
                loc = ("api", "routes", i, "integration", "request_template", "file")
                file = _locate(loc, layers)
                raise ConfigError(
                    f"{file or 'stage files'}: api.routes[{i}].integration.request_template.file: "
                    f"template file {path} does not exist."
                )


def load_all(project_dir: Path) -> list[Stage]:
    return [load_stage(project_dir, n) for n in stage_names(project_dir)]
