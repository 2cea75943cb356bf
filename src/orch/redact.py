"""The one place that keeps secrets out of what orch prints, writes to a summary, comments or
posts: a registry of secret values and the function that masks them in any text.

Whatever learns a secret registers it here (orch.secrets: Lambda environment values marked
secret; orch.aws: the AWS credentials of the environment or session; a CI integration: its
tokens and webhook URLs); whatever emits text passes it through `redact` (orch.reporter's
Console does for every line; summaries, PR comments and chat posts must too). Values are
kept in this process's memory only, never written anywhere, and never printed by this module.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_LENGTH = 4
"""Shorter values are not masked: masking `abc` everywhere would garble every message; a
secret that short is not one."""


class Redactor:
    """Secret values and their masks; thread-safe. `redactor(text)` masks every registered
    value in `text`, also as it appears JSON-escaped, HCL-escaped or URL-encoded."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, value: str | None, label: str = "secret") -> None:
        """Mask `value` (and each line of it, for a multi-line secret) from now on."""
        if not value or len(value) < MIN_LENGTH:
            return
        forms = {value, *_encodings(value)}
        forms |= {line for line in value.splitlines() if len(line.strip()) >= MIN_LENGTH}
        with self._lock:
            for form in forms:
                if len(form) >= MIN_LENGTH:
                    self._labels.setdefault(form, label)
            self._pattern = None

    def __call__(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def labels(self) -> list[str]:
        """What kinds of values are registered (their labels, never the values)."""
        with self._lock:
            return sorted(set(self._labels.values()))

    def clear(self) -> None:
        """Forget every value (tests)."""
        with self._lock:
            self._labels.clear()
            self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._labels:
                ordered = sorted(self._labels, key=len, reverse=True)  # longest first: no partial masks
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern


def _encodings(value: str) -> set[str]:
    """How a value is spelled inside JSON, HCL and URLs (what Terraform's and AWS's messages quote)."""
    in_json = json.dumps(value)[1:-1]
    in_hcl = in_json.replace("${", "$${").replace("%{", "%%{")
    return {in_json, in_hcl, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}


REGISTRY = Redactor()
"""The process's registry: the Console and every other emitter use it."""


def register(value: str | None, label: str = "secret") -> None:
    """Mask `value` in everything orch prints from now on (see Redactor.register)."""
    REGISTRY.register(value, label)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    return REGISTRY(text)


def redact_data(value: Any) -> Any:
    """A copy of JSON-like `value` (dicts, lists, strings, numbers) with every registered secret
    masked in its strings and keys: for documents orch writes or posts (release records)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


AWS_CREDENTIAL_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
                            "AWS_SECURITY_TOKEN")


def register_aws_credentials(env: Mapping[str, str] | None = None, *, more: Iterable[str | None] = (),
                             dummies: Iterable[str] = ()) -> None:
    """Register the AWS credentials in `env` (the process environment by default) and any
    `more` (a boto3 session's resolved keys), except the sandbox's public `dummies`."""
    env = os.environ if env is None else env
    skip = set(dummies)
    for name in AWS_CREDENTIAL_VARIABLES:
        value = env.get(name)
        if value and value not in skip:
            register(value, f"AWS credential ({name})")
    for value in more:
        if value and value not in skip:
            register(value, "AWS credential")


__all__ = ["MASK", "REGISTRY", "Redactor", "redact", "redact_data", "register", "register_aws_credentials"]
