"""Secret values of a stage (`function.secrets`): read when a command needs them, registered
with orch.redact at once, handed to Terraform only through one environment variable of its
process.

A stage file names where a secret comes from (an environment variable, or a file outside
`stages/`), never the value. The values reach Terraform as `TF_VAR_secret_environment`, the
rendered root's `sensitive` variable, so plans show `(sensitive value)` and nothing orch
writes (terraform.tfvars.json, rendered files) holds them. Terraform still stores them in
its state, as it does every attribute: keep state encrypted and private (the README says
so). This module never prints a value and never writes one to disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from orch import redact
from orch.config import Stage, secret_file
from orch.errors import ConfigError

TF_VARIABLE = "secret_environment"
"""The rendered root's variable (templates/main.tf.j2) and modules/stack's."""
ENV_NAME = f"TF_VAR_{TF_VARIABLE}"


def resolve(stage: Stage) -> dict[str, str]:
    """Every secret of `stage`: name -> value, each registered for redaction as it is read.

    Raises ConfigError naming the stage file, the field and the variable or file when a value
    is missing, unreadable or empty.
    """
    return {name: _read(stage, name) for name in stage.config.function.secrets}


def register_available(stage: Stage) -> None:
    """Register for redaction every secret of `stage` that can be read now, silently skipping
    the rest: for commands that hand no secret to Terraform but print what the function or AWS
    says (output, smoke, logs, invoke, destroy), so a handler echoing its secret is masked."""
    for name in stage.config.function.secrets:
        try:
            _read(stage, name)
        except ConfigError:
            continue


def _read(stage: Stage, name: str) -> str:
    """The value of secret `name`, registered for redaction (ConfigError: see resolve)."""
    source = stage.config.function.secrets[name]
    where = stage.secret_origins.get(name, f"function.secrets.{name}")
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            raise ConfigError(
                f"{where}: the environment variable {source.env} is {'empty' if value == '' else 'not set'}.",
                hint=f"Export {source.env} (in CI, as a secret variable) before running orch.",
            )
    else:
        path = secret_file(stage, source)
        try:
            value = path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"{where}: cannot read the secret file {path} ({reason}).") from None
        if not value:
            raise ConfigError(f"{where}: the secret file {path} is empty.")
    redact.register(value, f"secret {name} of stage {stage.name}")
    return value


def terraform_env(values: Mapping[str, str]) -> dict[str, str]:
    """The environment entry that hands `values` to Terraform (empty when there are none)."""
    if not values:
        return {}
    return {ENV_NAME: hcl_map(values)}


def hcl_map(values: Mapping[str, str]) -> str:
    """An HCL object literal of strings, as Terraform parses a complex TF_VAR_ value: every
    character that is not printable is a `\\uNNNN` escape and `${`/`%{` stay literal."""
    return "{" + ", ".join(f"{_quote(k)} = {_quote(v)}" for k, v in sorted(values.items())) + "}"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out).replace("${", "$${").replace("%{", "%%{") + '"'
