"""loopback: answers with the event it received and a summary of its Lambda context.

Behind API Gateway's method-request passthrough template the event looks like
``{"body-json": ..., "params": {...}, "stage-variables": {...}, "context": {"stage": ...}}``;
the answer depends on ``event["context"]["stage"]``: ``dev`` adds a "detail" block, ``prod``
answers with a smaller body. A body of ``{"fail": "bad-request"}`` or ``{"fail": "internal"}``
raises an error whose message starts with ``[BadRequest]`` / ``[InternalServerError]``, for
integration responses that map errors to 400 / 500 by regex. Dependency-free on purpose.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any


class BadRequest(Exception):
    """The caller asked for something wrong: mapped to HTTP 400 by `.*\\[BadRequest\\].*`."""


class InternalServerError(Exception):
    """Something broke on our side: mapped to HTTP 500 by `.*\\[InternalServerError\\].*`."""


def _context_summary(context: Any) -> dict[str, Any]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return {
        "function_name": getattr(context, "function_name", None),
        "function_version": getattr(context, "function_version", None),
        "memory_limit_in_mb": getattr(context, "memory_limit_in_mb", None),
        "aws_request_id": getattr(context, "aws_request_id", None),
        "remaining_time_in_millis": remaining() if callable(remaining) else None,
        "log_group_name": getattr(context, "log_group_name", None),
        "invoked_function_arn": getattr(context, "invoked_function_arn", None),
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {"value": event}
    request = event.get("context")
    stage = request.get("stage") if isinstance(request, dict) else None
    body = event.get("body-json")
    fail = body.get("fail") if isinstance(body, dict) else None
    summary = _context_summary(context)

    print(
        json.dumps(
            {
                "msg": "loopback invoked",
                "stage": stage,
                "aws_request_id": summary["aws_request_id"],
                "fail": fail,
            }
        )
    )

    if fail == "bad-request":
        raise BadRequest("[BadRequest] the request body asked to fail with bad-request")
    if fail == "internal":
        raise InternalServerError("[InternalServerError] the request body asked to fail")

    if stage == "prod":
        return {
            "stage": "prod",
            "event": {"body-json": body, "params": event.get("params")},
            "context": {
                "function_name": summary["function_name"],
                "function_version": summary["function_version"],
                "aws_request_id": summary["aws_request_id"],
            },
        }

    answer: dict[str, Any] = {"stage": stage, "event": event, "context": summary}
    if stage == "dev":
        answer["detail"] = {
            "python_version": platform.python_version(),
            "log_level": os.environ.get("LOG_LEVEL"),
            "stage_variables": event.get("stage-variables"),
        }
    return answer
