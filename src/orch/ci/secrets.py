"""The secrets a CI build hands `orch ci` itself: the Slack webhook URL (the URL is the
credential: anyone who has it can post) and the GitHub tokens that may comment.

This module names where they are (`ci_secrets`) and masks them in text (`masking`), so that
everything `orch ci` prints, writes to the summary, comments or posts goes through one
filter: the Console's `redact` hook, which CiRun wraps. It does not know the stage's own
secrets or AWS credentials (those belong to the engine's redaction registry, orch.redact,
when it exists) and it never prints, logs or writes a value.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping

MASK = "***"  # the same mask as orch.redact's
MIN_LENGTH = 4  # shorter values are not secrets worth garbling every message for

SECRET_VARIABLES = {
    "SLACK_WEBHOOK_URL": "Slack webhook URL",
    "GITHUB_TOKEN": "GitHub token",
    "GH_TOKEN": "GitHub token",
}
"""Environment variables whose values orch ci masks: name -> label (never the value)."""


def ci_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The CI secrets present in `env`: value -> label. A webhook URL also gives its path and
    query (`/services/T000/B000/XXXX`), the secret part, which messages may quote without the
    host. Values shorter than MIN_LENGTH are left out."""
    found: dict[str, str] = {}
    for name, label in SECRET_VARIABLES.items():
        value = (env.get(name) or "").strip()
        if len(value) < MIN_LENGTH:
            continue
        found[value] = label
        if name == "SLACK_WEBHOOK_URL":
            parts = urllib.parse.urlsplit(value)
            secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
            if len(secret_part.strip("/")) >= MIN_LENGTH:
                found[secret_part] = label
    return found


def masking(secrets: Mapping[str, str], then: Callable[[str], str]) -> Callable[[str], str]:
    """A redact function: every value of `secrets` (as written, JSON-escaped and URL-encoded)
    becomes MASK, longest first, then the text goes through `then` (the Console's own hook)."""
    forms: set[str] = set()
    for value in secrets:
        forms |= {value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
                  urllib.parse.quote_plus(value)}
    forms = {form for form in forms if len(form) >= MIN_LENGTH}
    if not forms:
        return then
    pattern = re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))

    def redact(text: str) -> str:
        return then(pattern.sub(MASK, text) if text else text)

    return redact
