"""Read-only views over what Terraform says in JSON: a saved plan (`terraform show -json`)
and the machine-readable stream of `terraform apply -json` / `init -json`.

This module owns how orch counts and classifies changes (as Terraform counts them in its
`Plan:` line), finds removed API methods and replaced resources, and reads outputs and
diagnostics from that JSON. It never runs Terraform, never prints and never reads Terraform's
human output. Formats: https://developer.hashicorp.com/terraform/internals/json-format and
https://developer.hashicorp.com/terraform/internals/machine-readable-ui
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

METHOD_TYPE = "aws_api_gateway_method"
LAMBDA_FUNCTION_TYPE = "aws_lambda_function"

# `show -json` spells an action as a list (jsonplan.UnmarshalActions); the stream spells it
# as one word (views/json/change.go). Both map to these names.
_SHOW_ACTIONS: dict[tuple[str, ...], str] = {
    ("no-op",): "no-op",
    ("create",): "create",
    ("read",): "read",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("forget",): "forget",
    ("create", "forget"): "replace-forget",
}
_STREAM_ACTIONS = {
    "noop": "no-op",
    "move": "no-op",
    "import": "no-op",
    "create": "create",
    "read": "read",
    "update": "update",
    "delete": "delete",
    "replace": "replace",
    "remove": "forget",
}


@dataclass(frozen=True)
class ChangeCounts:
    """Terraform's own `Plan:` line: a replace counts as one add and one destroy.

    Rule (internal/command/jsonformat/plan.go, renderHuman): managed resources only, no-op and
    move-only changes left out; add = create + replace (+ create-then-forget), change =
    update, destroy = delete + replace; imports are counted apart.
    """

    add: int = 0
    change: int = 0
    destroy: int = 0
    imports: int = 0

    @property
    def any(self) -> bool:
        return bool(self.add or self.change or self.destroy or self.imports)

    def text(self) -> str:
        """`1 to add, 0 to change, 2 to destroy` (with `N to import, ` first when there are imports)."""
        head = f"{self.imports} to import, " if self.imports else ""
        return f"{head}{self.add} to add, {self.change} to change, {self.destroy} to destroy"


@dataclass(frozen=True)
class ResourceChange:
    """One resource instance in a plan: its address, type and what Terraform will do to it."""

    address: str
    type: str
    action: str  # create, update, delete, replace, read, forget, replace-forget, no-op
    importing: bool = False
    managed: bool = True


@dataclass(frozen=True)
class DeployedCode:
    """A Lambda function's code in the state a plan was made from: `code_sha256` is Lambda's
    CodeSha256 (base64 of the zip's SHA-256), Terraform's `code_sha256` attribute (falling back
    to `source_code_hash`) in the resource's `change.before`."""

    address: str
    function_name: str
    code_sha256: str


@dataclass(frozen=True)
class PlanView:
    """What a plan will change, from either source; the same answers from both.

    `output_changes` is True when an output value changes (applying such a plan changes
    state even with no resource change). `outputs` holds known output values (a saved plan's
    `planned_values.outputs`, or the values an apply reported).
    """

    resources: tuple[ResourceChange, ...] = ()
    output_changes: bool = False
    reported_counts: ChangeCounts | None = None  # the stream's own change_summary, when read from one
    outputs: Mapping[str, Any] = field(default_factory=dict)
    deployed_code: tuple[DeployedCode, ...] = ()  # from a saved plan only: the functions' code before it
    variables: Mapping[str, Any] = field(default_factory=dict)  # a saved plan's input variables (name -> value)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_show_json(cls, data: Mapping[str, Any]) -> PlanView:
        """From `terraform show -json PLANFILE` (format_version 1.x)."""
        resources = []
        for item in data.get("resource_changes") or ():
            change = item.get("change") or {}
            action = _SHOW_ACTIONS.get(tuple(change.get("actions") or ("no-op",)), "no-op")
            resources.append(
                ResourceChange(
                    address=item.get("address", ""),
                    type=item.get("type", ""),
                    action=action,
                    importing=bool(change.get("importing")),
                    managed=item.get("mode", "managed") == "managed",
                )
            )
        output_changes = any(
            tuple((change or {}).get("actions") or ()) not in ((), ("no-op",))
            for change in (data.get("output_changes") or {}).values()
        )
        planned = ((data.get("planned_values") or {}).get("outputs")) or {}
        outputs = {name: item.get("value") for name, item in planned.items() if "value" in item}
        variables = {name: (item or {}).get("value") for name, item in (data.get("variables") or {}).items()}
        return cls(tuple(resources), output_changes, None, outputs,
                   deployed_code=_deployed_code(data), variables=variables)

    @classmethod
    def from_stream(cls, stream: JsonStream) -> PlanView:
        """From the `planned_change` and `change_summary` (operation plan) messages of `-json`."""
        resources = []
        for message in stream.of_type("planned_change"):
            change = message.get("change") or {}
            resource = change.get("resource") or {}
            resources.append(
                ResourceChange(
                    address=resource.get("addr", ""),
                    type=resource.get("resource_type", ""),
                    action=_STREAM_ACTIONS.get(change.get("action", ""), "no-op"),
                    importing=change.get("action") == "import",
                    managed=not str(resource.get("resource", "")).startswith("data."),
                )
            )
        summary = stream.change_summary("plan")
        planned_outputs = [m for m in stream.of_type("outputs") if _is_plan_outputs(m)]
        output_changes = any(
            (item or {}).get("action") not in (None, "noop")
            for message in planned_outputs
            for item in (message.get("outputs") or {}).values()
        )
        return cls(tuple(resources), output_changes, summary, stream.outputs())

    # ------------------------------------------------------------------ questions

    @property
    def counts(self) -> ChangeCounts:
        """Counts as in Terraform's `Plan:` line (the stream's own summary when there is one)."""
        if self.reported_counts is not None:
            return self.reported_counts
        add = change = destroy = imports = 0
        for res in self.resources:
            if res.importing:
                imports += 1
            if not res.managed or res.action in ("no-op", "read"):
                continue
            if res.action in ("create", "replace", "replace-forget"):
                add += 1
            if res.action in ("delete", "replace"):
                destroy += 1
            if res.action == "update":
                change += 1
        return ChangeCounts(add, change, destroy, imports)

    @property
    def has_changes(self) -> bool:
        """True when applying the plan would change anything (resources or outputs)."""
        return self.counts.any or self.output_changes or any(
            r.action == "forget" for r in self.resources if r.managed
        )

    def addresses(self, *actions: str) -> list[str]:
        """Addresses of managed resources whose action is one of `actions`, in plan order."""
        return [r.address for r in self.resources if r.managed and r.action in actions]

    def destroys(self, types: Iterable[str]) -> list[str]:
        """Addresses of managed resources of `types` the plan deletes or replaces, in plan order."""
        wanted = set(types)
        return [r.address for r in self.resources
                if r.managed and r.type in wanted and r.action in ("delete", "replace", "replace-forget")]

    @property
    def removed_methods(self) -> list[str]:
        """API methods (routes) the plan deletes outright (not replaced).

        Terraform creates the new API deployment before it deletes these (the stage module's
        create_before_destroy), so that deployment still serves them: orch redeploys once more.
        """
        return [r.address for r in self.resources if r.type == METHOD_TYPE and r.action == "delete"]

    @property
    def replaced(self) -> list[str]:
        return self.addresses("replace", "replace-forget")

    def text(self) -> str:
        if not self.has_changes:
            return "no changes"
        if not self.counts.any:
            return "only output values change"
        return self.counts.text()


def _deployed_code(data: Mapping[str, Any]) -> tuple[DeployedCode, ...]:
    """Only the code hash and name are kept from `change.before`: the rest of a function's prior
    attributes (its environment, which may hold secrets) never leaves this function."""
    found = []
    for item in data.get("resource_changes") or ():
        before = (item.get("change") or {}).get("before")
        if item.get("type") != LAMBDA_FUNCTION_TYPE or not isinstance(before, dict):
            continue
        code = before.get("code_sha256") or before.get("source_code_hash")
        if isinstance(code, str) and code:
            found.append(DeployedCode(item.get("address", ""), str(before.get("function_name") or ""), code))
    return tuple(found)


def _is_plan_outputs(message: Mapping[str, Any]) -> bool:
    """The plan phase's `outputs` message carries actions; the apply phase's carries values."""
    return any("action" in (item or {}) for item in (message.get("outputs") or {}).values())


@dataclass(frozen=True)
class Diagnostic:
    """An error or warning Terraform reported as data (`type: diagnostic`)."""

    severity: str
    summary: str
    detail: str = ""
    filename: str | None = None
    line: int | None = None

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Diagnostic:
        diag = message.get("diagnostic") or {}
        start = ((diag.get("range") or {}).get("start")) or {}
        return cls(
            severity=diag.get("severity", "error"),
            summary=diag.get("summary", ""),
            detail=diag.get("detail", ""),
            filename=(diag.get("range") or {}).get("filename"),
            line=start.get("line"),
        )

    def text(self) -> str:
        """Summary, where, and the full detail: how a person should see it."""
        head = f"{self.severity.capitalize()}: {self.summary}"
        if self.filename:
            head += f" (in {self.filename}" + (f" line {self.line})" if self.line else ")")
        return head + (f"\n{self.detail}" if self.detail else "")


class JsonStream:
    """The messages of one `-json` run, in order. Lines that are not JSON objects (Terraform
    1.11's `init -json` still prints a few plain lines) are kept as `plain`."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.plain: list[str] = []

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> JsonStream:
        stream = cls()
        for line in lines:
            stream.feed(line)
        return stream

    def feed(self, line: str) -> dict[str, Any] | None:
        """Parse one line; return the message (or None for a plain line)."""
        text = line.strip()
        if not text:
            return None
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict) or "type" not in message:
            self.plain.append(line.rstrip("\n"))
            return None
        self.messages.append(message)
        return message

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def change_summary(self, operation: str) -> ChangeCounts | None:
        """The `change_summary` of `operation` (plan, apply or destroy), as ChangeCounts."""
        for message in self.of_type("change_summary"):
            changes = message.get("changes") or {}
            if changes.get("operation") == operation:
                return ChangeCounts(
                    add=int(changes.get("add", 0)),
                    change=int(changes.get("change", 0)),
                    destroy=int(changes.get("remove", 0)),
                    imports=int(changes.get("import", 0)),
                )
        return None

    def outputs(self) -> dict[str, Any]:
        """Output values reported after an apply (the last `outputs` message with values)."""
        for message in reversed(self.of_type("outputs")):
            items = message.get("outputs") or {}
            if not _is_plan_outputs(message):
                return {name: item.get("value") for name, item in items.items()}
        return {}

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [Diagnostic.from_message(m) for m in self.of_type("diagnostic")]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def applied(self) -> list[str]:
        """Addresses whose change completed (`apply_complete` hooks), in completion order."""
        return [
            ((m.get("hook") or {}).get("resource") or {}).get("addr", "")
            for m in self.of_type("apply_complete")
        ]


def render_message(message: Mapping[str, Any]) -> str | None:
    """The line a person watching should see for one stream message (None: nothing).

    `@message` as Terraform wrote it; diagnostics in full (summary, where, detail).
    """
    kind = message.get("type")
    if kind == "version":
        return None
    if kind == "diagnostic":
        return Diagnostic.from_message(message).text()
    if kind == "outputs":
        if _is_plan_outputs(message):
            return None  # "Outputs: 11" before the apply says nothing a person can use
        lines = ["Outputs:"]
        for name, item in sorted((message.get("outputs") or {}).items()):
            value = "(sensitive value)" if item.get("sensitive") else json.dumps(item.get("value"))
            lines.append(f"  {name} = {value}")
        return "\n".join(lines)
    text = message.get("@message")
    return str(text) if text else None
