"""orch's one comment on a pull request, through GitHub's REST API: found again by the hidden
marker it starts with and updated, else created, so a PR carries one orch comment however
often it is pushed.

This module owns those HTTP calls (urllib3) and their errors. The API base comes from the
caller (GITHUB_API_URL on GitHub Actions, https://api.github.com otherwise, a local receiver
in tests). It never prints; the token only ever goes into the Authorization header.
API: https://docs.github.com/en/rest/issues/comments (list, create, update an issue comment;
a pull request is an issue for comments).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

DEFAULT_API_URL = "https://api.github.com"
PAGE_SIZE = 100
MAX_PAGES = 50  # 5,000 comments: past that, a new comment rather than an endless search
TIMEOUT_SECONDS = 15.0


class GitHubError(Exception):
    """A GitHub API call failed (the status and GitHub's message, never the token)."""


@dataclass(frozen=True)
class Posted:
    """What happened: `action` is "created" or "updated"; `url` the comment's html_url."""

    action: str
    comment_id: int
    url: str


class GitHub:
    """Calls to one GitHub API base with one token."""

    def __init__(self, token: str, api_url: str = DEFAULT_API_URL, *, http: Any = None) -> None:
        import urllib3

        self.api_url = api_url.rstrip("/")
        self.http = http or urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=TIMEOUT_SECONDS),
            retries=urllib3.Retry(total=2, backoff_factor=0.5, status_forcelist=(502, 503, 504),
                                  allowed_methods=frozenset({"GET"})),
        )
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "orch-ci",
        }

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[Any, Any]:
        import urllib3

        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self._headers, **({"Content-Type": "application/json"} if data is not None else {}))
        try:
            response = self.http.request(method, url, body=data, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise GitHubError(f"{method} {_path(url)}: {type(exc).__name__}: {exc}") from None
        if response.status >= 300:
            message = _message(response.data)
            raise GitHubError(f"{method} {_path(url)}: HTTP {response.status}" + (f": {message}" if message else ""))
        try:
            return json.loads(response.data or b"null"), response.headers
        except ValueError:
            raise GitHubError(f"{method} {_path(url)}: the answer is not JSON") from None

    def find_comment(self, repository: str, number: int, marker: str) -> dict[str, Any] | None:
        """The first comment on issue/PR `number` whose body contains `marker`, or None."""
        url: str | None = f"{self.api_url}/repos/{_repo(repository)}/issues/{number}/comments?per_page={PAGE_SIZE}"
        for _ in range(MAX_PAGES):
            if url is None:
                return None
            comments, headers = self._call("GET", url)
            for comment in comments or ():
                if marker in str(comment.get("body") or ""):
                    return comment
            url = _next_page(headers.get("Link") or headers.get("link") or "")
        return None

    def upsert_comment(self, repository: str, number: int, body: str, marker: str) -> Posted:
        """Update orch's comment (found by `marker`, which `body` must contain) or create it."""
        if marker not in body:
            raise ValueError("the comment body must contain its marker, or it cannot be found again")
        existing = self.find_comment(repository, number, marker)
        if existing is not None:
            answer, _ = self._call("PATCH", f"{self.api_url}/repos/{_repo(repository)}/issues/comments/"
                                   f"{int(existing['id'])}", {"body": body})
            return Posted("updated", int(answer.get("id", existing["id"])), str(answer.get("html_url", "")))
        answer, _ = self._call("POST", f"{self.api_url}/repos/{_repo(repository)}/issues/{number}/comments",
                               {"body": body})
        return Posted("created", int(answer["id"]), str(answer.get("html_url", "")))


def _repo(repository: str) -> str:
    owner, _, name = repository.partition("/")
    if not owner or not name:
        raise GitHubError(f"{repository!r} is not owner/name")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def _path(url: str) -> str:
    """The URL without its host: what a message needs, and nothing a proxy put in it."""
    return re.sub(r"^[a-z]+://[^/]+", "", url)


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return ""


def _next_page(link: str) -> str | None:
    """The `rel="next"` URL of a Link header (GitHub's pagination), or None."""
    for part in link.split(","):
        match = re.search(r'<([^>]+)>\s*;\s*rel="next"', part)
        if match:
            return match.group(1)
    return None
