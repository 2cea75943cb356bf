"""The Slack message after an apply from `orch ci`: what was deployed where, from which
commit and trigger, its invoke URL, the smoke checks' summary, how it ended and how long it
took, posted to an incoming webhook with slack_sdk's WebhookClient.

This module owns the message (`ApplyReport` -> payload) and posting it. A failed post is
returned as a sentence, never raised: a notification must not change a deploy's exit code.
Every text field passes through the `redact` it is given, and the webhook URL (a secret) is
never part of a returned message. Webhooks: https://api.slack.com/messaging/webhooks
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIMEOUT_SECONDS = 10
ICONS = {"deployed": ":white_check_mark:", "up to date": ":white_check_mark:",
         "smoke checks failed": ":x:", "rolled back": ":rewind:", "rollback failed": ":rotating_light:",
         "apply failed": ":x:"}


@dataclass(frozen=True)
class ApplyReport:
    """One apply from `orch ci`, for people. `outcome`: deployed, up to date, smoke checks
    failed, rolled back, rollback failed, apply failed; `seconds`: wall time of apply and
    checks; `smoke`: one line from the smoke checks (or why there was none)."""

    stage: str
    target: str
    outcome: str
    commit: str | None
    trigger: str
    invoke_url: str | None
    smoke: str
    seconds: float
    detail: str = ""  # e.g. the error, or what was rolled back and why
    smoke_status: str = "not run"  # passed, unchecked, failed, rolled back, rollback failed, not run

    def headline(self) -> str:
        where = " (sandbox)" if self.target == "sandbox" else ""
        return f"orch: stage {self.stage}{where}: {self.outcome}"


def payload(report: ApplyReport, redact: Callable[[str], str] = lambda text: text) -> dict[str, Any]:
    """The webhook payload: `text` (notifications, clients without blocks) and `blocks`."""
    commit = report.commit[:12] if report.commit else "unknown"
    fields = [
        ("Stage", f"{report.stage} ({report.target})"),
        ("Outcome", report.outcome),
        ("Smoke", report.smoke_status),
        ("Commit", commit),
        ("Trigger", report.trigger),
        ("Invoke URL", report.invoke_url or "none"),
        ("Duration", f"{report.seconds:.0f} s"),
    ]
    text = redact(f"{report.headline()} - {report.trigger}, commit {commit}, {report.seconds:.0f} s; "
                  f"smoke: {report.smoke}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": redact(f"{ICONS.get(report.outcome, '')} *{report.headline()}*")}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": redact(f"*{name}*\n{value}")}
                                       for name, value in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": redact(f"*Smoke checks*\n{report.smoke}")}},
    ]
    if report.detail:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": redact(report.detail[:2900])}})
    return {"text": text, "blocks": blocks}


def notify(webhook_url: str, report: ApplyReport, redact: Callable[[str], str] = lambda text: text,
           *, client: Any = None) -> str | None:
    """Post the report; None when Slack accepted it, else one sentence saying why not (HTTP
    status and Slack's answer, or the connection error), with the webhook URL left out."""
    from slack_sdk.webhook import WebhookClient

    hook = client or WebhookClient(webhook_url, timeout=TIMEOUT_SECONDS)
    message = payload(report, redact)
    try:
        response = hook.send(text=message["text"], blocks=message["blocks"])
    except Exception as exc:  # noqa: BLE001 - whatever the transport raised, the deploy's result stands
        return redact(f"the Slack webhook could not be reached: {type(exc).__name__}: {exc}".replace(webhook_url,
                                                                                                  "<webhook>"))
    if response.status_code != 200:
        body = str(response.body or "")[:200].replace(webhook_url, "<webhook>")
        return redact(f"the Slack webhook answered HTTP {response.status_code}: {body}")
    return None
