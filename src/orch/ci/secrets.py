"""The secrets a CI build hands `orch ci` itself: the Slack webhook URL (the URL is the
credential: anyone who has it can post) and the GitHub tokens that may comment.

This module names where they are (`ci_secrets`); CiRun registers them in orch.redact, the one
registry that also holds the stage's secrets and the AWS credentials, so everything `orch ci`
prints, writes to the summary, comments or posts is masked by one filter. It never prints,
logs or writes a value.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from orch.redact import MIN_LENGTH

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
