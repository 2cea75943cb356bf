"""Local stand-ins for the services `orch ci` posts to, on 127.0.0.1 only: GitHub's issue
comments API (list with pagination, create, update) and a Slack incoming webhook. Each
records every request it got, so tests assert on what orch really sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A threaded HTTP server; `requests` holds (method, path, headers, parsed JSON body)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        handler.receiver = self  # type: ignore[attr-defined]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.receiver.requests.append((self.command, self.path, dict(self.headers), body))
        return body

    def _answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        payload = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


class GitHubComments(_Handler):
    """/repos/{owner}/{repo}/issues/{n}/comments (GET pages of 2 with a Link header, POST) and
    /repos/{owner}/{repo}/issues/comments/{id} (PATCH), over an in-memory comment list."""

    comments: list[dict[str, Any]] = []
    page_size = 2

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record()
        path, _, query = self.path.partition("?")
        number = int(path.split("/")[-2])
        page = int(dict(p.split("=") for p in query.split("&") if "=" in p).get("page", "1"))
        mine = [c for c in self.comments if c["issue"] == number]
        chunk = mine[(page - 1) * self.page_size: page * self.page_size]
        headers = {}
        if page * self.page_size < len(mine):
            headers["Link"] = f'<{self.receiver.url}{path}?per_page=100&page={page + 1}>; rel="next"'
        self._answer(200, chunk, headers)

    def do_POST(self) -> None:  # noqa: N802
        body = self._record()
        number = int(self.path.split("/")[-2])
        comment = {"id": 1000 + len(self.comments), "issue": number, "body": body["body"],
                   "html_url": f"https://github.test/pr/{number}#c{len(self.comments)}"}
        self.comments.append(comment)
        self._answer(201, comment)

    def do_PATCH(self) -> None:  # noqa: N802
        body = self._record()
        comment_id = int(self.path.split("/")[-1])
        for comment in self.comments:
            if comment["id"] == comment_id:
                comment["body"] = body["body"]
                self._answer(200, comment)
                return
        self._answer(404, {"message": "Not Found"})


def github() -> Receiver:
    handler = type("Comments", (GitHubComments,), {"comments": []})
    return Receiver(handler)


class SlackWebhook(_Handler):
    """Answers every POST with `status` (Slack says `ok` on success)."""

    status = 200

    def do_POST(self) -> None:  # noqa: N802
        self._record()
        body = b"ok" if self.status == 200 else b"internal_error"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def slack(status: int = 200) -> Receiver:
    return Receiver(type("Slack", (SlackWebhook,), {"status": status}))
