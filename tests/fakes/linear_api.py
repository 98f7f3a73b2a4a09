"""A fake Linear GraphQL API: a real HTTP server on 127.0.0.1 for the takopi-linear plugin.

It answers the operations takopi-linear 0.1.0 sends, by ``operationName`` (it never parses
GraphQL): ``Issue``, ``AgentSession``, ``AgentActivity``, ``WorkflowStates`` (queries) and
``AgentActivityCreate``, ``AgentSessionUpdate``, ``IssueUpdate``, ``CommentCreate``
(mutations). Requests must carry ``Authorization: Bearer <token>``. State is what a test
looks at: the issues it seeded, every agent activity per session (in order), session plans,
issue updates. Any other operation is answered with a GraphQL error and recorded in
``unknown`` so a test can assert the plugin used nothing else.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORKFLOW_STATES = [
    {"id": "state-todo", "name": "Todo", "type": "unstarted"},
    {"id": "state-started", "name": "In Progress", "type": "started"},
    {"id": "state-done", "name": "Done", "type": "completed"},
    {"id": "state-canceled", "name": "Canceled", "type": "canceled"},
]


@dataclass
class Activity:
    """One ``agentActivityCreate``: what the plugin showed in an agent session."""

    id: str
    session_id: str
    type: str
    body: str
    ephemeral: bool | None
    content: dict[str, Any] = field(default_factory=dict)


class FakeLinearApi:
    """The fake API; ``start()`` returns the GraphQL endpoint URL."""

    def __init__(self, token: str = "lin_oauth_test") -> None:
        self.token = token
        self.url = ""
        self.issues: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, str | None] = {}
        """Agent session id -> issue id."""
        self.activities: list[Activity] = []
        self.plans: dict[str, list[dict[str, Any]]] = {}
        self.issue_updates: list[tuple[str, dict[str, Any]]] = []
        self.comments: list[tuple[str, str]] = []
        self.unknown: list[str] = []
        self.unauthorized = 0
        self._lock = threading.Condition()
        self._seq = 0
        self._httpd: ThreadingHTTPServer | None = None

    # -- seeding and reading ------------------------------------------------------------
    def add_issue(self, issue_id: str, *, identifier: str, title: str, session_id: str) -> None:
        with self._lock:
            self.issues[issue_id] = {
                "id": issue_id,
                "title": title,
                "description": None,
                "identifier": identifier,
                "url": f"https://linear.example/issue/{identifier}",
                "estimate": 1,
                "priority": 2,
                "cycle": None,
                "team": {"id": "team-1", "key": identifier.split("-")[0], "name": "Eng"},
                "project": None,
                "state": {"id": "state-todo", "name": "Todo", "type": "unstarted"},
                "labels": {"nodes": []},
            }
            self.sessions[session_id] = issue_id

    def session_activities(self, session_id: str) -> list[Activity]:
        with self._lock:
            return [a for a in self.activities if a.session_id == session_id]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every request)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake Linear API: condition not met in {timeout}s")
                self._lock.wait(min(left, 0.2))

    # -- operations ---------------------------------------------------------------------
    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-{self._seq}"

    def _issue(self, issue_id: str) -> dict[str, Any]:
        issue = self.issues.get(issue_id)
        if issue is None:
            raise LookupError(f"Entity not found: Issue {issue_id}")
        return issue

    def _op_Issue(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"issue": self._issue(str(v["id"]))}

    def _op_AgentSession(self, v: dict[str, Any]) -> dict[str, Any]:
        sid = str(v["id"])
        if sid not in self.sessions:
            raise LookupError(f"Entity not found: AgentSession {sid}")
        issue_id = self.sessions[sid]
        return {"agentSession": {"id": sid, "issue": self._issue(issue_id) if issue_id else None}}

    def _op_AgentActivity(self, v: dict[str, Any]) -> dict[str, Any]:
        found = next((a for a in self.activities if a.id == v["id"]), None)
        if found is None:
            raise LookupError(f"Entity not found: AgentActivity {v['id']}")
        typename = f"AgentActivity{found.type.capitalize()}Content"
        return {
            "agentActivity": {
                "id": found.id,
                "content": {"__typename": typename, "body": found.body},
            }
        }

    def _op_WorkflowStates(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"workflowStates": {"nodes": list(WORKFLOW_STATES)}}

    def _op_AgentActivityCreate(self, v: dict[str, Any]) -> dict[str, Any]:
        data = dict(v["input"])
        sid = str(data["agentSessionId"])
        if sid not in self.sessions:
            raise LookupError(f"Entity not found: AgentSession {sid}")
        content = dict(data.get("content") or {})
        activity = Activity(
            id=self._next_id("activity"),
            session_id=sid,
            type=str(content.get("type", "")),
            body=str(content.get("body") or content.get("parameter") or ""),
            ephemeral=data.get("ephemeral"),
            content=content,
        )
        self.activities.append(activity)
        return {"agentActivityCreate": {"success": True, "agentActivity": {"id": activity.id}}}

    def _op_AgentSessionUpdate(self, v: dict[str, Any]) -> dict[str, Any]:
        sid = str(v["agentSessionId"])
        plan = (v.get("data") or {}).get("plan")
        if isinstance(plan, list):
            self.plans[sid] = plan
        return {"agentSessionUpdate": {"success": True, "agentSession": {"id": sid}}}

    def _op_IssueUpdate(self, v: dict[str, Any]) -> dict[str, Any]:
        issue = self._issue(str(v["id"]))
        fields = dict(v.get("input") or {})
        self.issue_updates.append((issue["id"], fields))
        state = next((s for s in WORKFLOW_STATES if s["id"] == fields.get("stateId")), None)
        if state is not None:
            issue["state"] = dict(state)
        return {"issueUpdate": {"success": True, "issue": issue}}

    def _op_CommentCreate(self, v: dict[str, Any]) -> dict[str, Any]:
        data = dict(v["input"])
        self.comments.append((str(data["issueId"]), str(data["body"])))
        return {"commentCreate": {"success": True, "comment": {"id": self._next_id("comment")}}}

    def handle(self, auth: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """One POST: (HTTP status, JSON reply)."""
        with self._lock:
            try:
                if auth != f"Bearer {self.token}":
                    self.unauthorized += 1
                    return 401, {"errors": [{"message": "Authentication required"}]}
                try:
                    request = json.loads(body)
                    name = str(request.get("operationName") or "")
                    variables = dict(request.get("variables") or {})
                except (ValueError, AttributeError, TypeError):
                    return 400, {"errors": [{"message": "invalid JSON body"}]}
                operation = getattr(self, f"_op_{name}", None)
                if operation is None:
                    self.unknown.append(name)
                    return 200, {"errors": [{"message": f"unknown operation {name!r}"}]}
                try:
                    return 200, {"data": operation(variables)}
                except (LookupError, KeyError, TypeError, ValueError) as exc:
                    return 200, {"errors": [{"message": str(exc)}]}
            finally:
                self._lock.notify_all()

    # -- HTTP -----------------------------------------------------------------------------
    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, reply = api.handle(
                    self.headers.get("Authorization"), self.rfile.read(length)
                )
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, name="fake-linear", daemon=True).start()
        host, port = httpd.server_address[:2]
        self.url = f"http://{host}:{port}/graphql"
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


__all__ = ["WORKFLOW_STATES", "Activity", "FakeLinearApi"]
