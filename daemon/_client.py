"""A small synchronous client of a running daemon (the CLI uses it).

Errors::

    DaemonError
    ├── DaemonUnavailable    nothing answers at the URL
    └── ApiError             the daemon answered 4xx or 5xx (status, error, problems)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from overstory.daemon._auth import TOKEN_FILE, AuthError, read_token
from overstory.daemon._config import DEFAULT_PORT, default_state_dir

__all__ = ["ApiError", "Client", "DaemonError", "DaemonUnavailable"]


class DaemonError(Exception):
    """Talking to the daemon failed."""


class DaemonUnavailable(DaemonError):
    """No daemon answers at ``url``."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"no overstory daemon answers at {url} ({reason})")
        self.url = url


class ApiError(DaemonError):
    """The daemon refused a request: ``status``, its ``error`` code and ``problems``."""

    def __init__(self, status: int, error: str, message: str, problems: list[dict[str, str]]):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problems = problems


class Client:
    """Calls the daemon's HTTP API; every method returns the decoded JSON answer.

    Build one with :meth:`discover` to find the URL and token the way the CLI does.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    @classmethod
    def discover(
        cls,
        *,
        url: str | None = None,
        token: str | None = None,
        state_dir: Path | None = None,
        timeout: float = 30.0,
    ) -> Client:
        """A client for the daemon of ``state_dir`` (default: as ``overstory serve``).

        The URL is ``url``, else ``$OVERSTORY_URL``, else what the running daemon wrote
        into ``state_dir/daemon.json``, else ``http://127.0.0.1:8177``. The token is
        ``token``, else ``$OVERSTORY_TOKEN``, else ``state_dir/token``. Raises
        :class:`DaemonError` when no token can be found.
        """
        state_dir = state_dir or default_state_dir()
        url = url or os.environ.get("OVERSTORY_URL") or _url_from(state_dir)
        token = token or os.environ.get("OVERSTORY_TOKEN")
        if not token:
            path = state_dir / TOKEN_FILE
            if not path.exists():
                raise DaemonError(
                    f"no token: {path} does not exist (the daemon writes it on its first "
                    "start); pass --token, set OVERSTORY_TOKEN, or point --state-dir at the "
                    "daemon's state directory"
                )
            try:
                token = read_token(path)
            except AuthError as exc:
                raise DaemonError(str(exc)) from None
        return cls(url, token, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the API ------------------------------------------------------------------------

    def submit(
        self,
        goal: str,
        *,
        input: Any = None,
        priority: int = 0,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"goal": goal, "input": input, "priority": priority}
        if timeout is not None:
            body["timeout"] = timeout
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        return self._call("POST", "/v1/goals", json=body)

    def goal(self, goal_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/goals/{goal_id}")

    def goals(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return self._call("GET", "/v1/goals", params=params)

    def cancel(self, goal_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/goals/{goal_id}/cancel")

    def reviews(self, *, status: str = "pending", goal_id: str | None = None) -> dict[str, Any]:
        params = {"status": status, **({"goal_id": goal_id} if goal_id else {})}
        return self._call("GET", "/v1/reviews", params=params)

    def approve(self, review_id: int) -> dict[str, Any]:
        return self._call("POST", f"/v1/reviews/{review_id}/approve")

    def reject(self, review_id: int, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/reviews/{review_id}/reject", json={"reason": reason})

    def edit(self, review_id: int, output: Any) -> dict[str, Any]:
        return self._call("POST", f"/v1/reviews/{review_id}/edit", json={"output": output})

    def trace(self, goal_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/goals/{goal_id}/trace")

    def tree(self) -> dict[str, Any]:
        return self._call("GET", "/v1/tree")

    def audit(
        self, *, goal_id: str | None = None, kind: str | None = None, after: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"after": after}
        if goal_id:
            params["goal_id"] = goal_id
        if kind:
            params["kind"] = kind
        return self._call("GET", "/v1/audit", params=params)

    def events(
        self, goal_id: str, *, follow: bool = True, after: int = 0
    ) -> Iterator[dict[str, Any]]:
        """The goal's events, decoded; with ``follow`` until the goal ends. Reconnects
        (from the last event seen) if the stream breaks while the daemon still answers."""
        last = after
        while True:
            params = {"after": last, "follow": "true" if follow else "false"}
            try:
                with self._http.stream(
                    "GET",
                    f"/v1/goals/{goal_id}/events",
                    params=params,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=60.0),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise _refusal(response)
                    for event in _parse_sse(response.iter_lines()):
                        last = event["seq"]
                        yield event
                return
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    raise DaemonUnavailable(self.url, _reason(exc)) from None
                if not follow:
                    raise DaemonUnavailable(self.url, _reason(exc)) from None
                # the stream broke (the daemon restarted?): reconnect from ``last``

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DaemonUnavailable(self.url, _reason(exc)) from None
        if response.status_code >= 400:
            raise _refusal(response)
        data: dict[str, Any] = response.json()
        return data


def _url_from(state_dir: Path) -> str:
    try:
        url = json.loads((state_dir / "daemon.json").read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"http://127.0.0.1:{DEFAULT_PORT}"
    return str(url)


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else f"cannot connect: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def _refusal(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        return ApiError(
            response.status_code, body["error"], body["message"], body.get("problems", [])
        )
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "http", response.text[:200], [])


def _parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield json.loads("\n".join(data))
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
