"""An in-process runtime with the supervisor's intake extension (taken / handled), for chat
loop tests that check what the loop reports."""

from __future__ import annotations

from typing import Any


class IntakeRuntime:
    """Wraps a runtime; records the messages reported taken and handled. ``answer`` is what
    ``note_incoming`` returns (True, as the supervisor does for a new message)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.taken: list[int] = []
        self.handled: list[int] = []

    def answer(self, message_id: int) -> Any:
        return True

    async def note_incoming(
        self, *, channel_id: Any, message_id: Any, thread_id: Any = None, seq: Any = None
    ) -> Any:
        self.taken.append(message_id)
        return self.answer(message_id)

    async def incoming_handled(
        self, *, channel_id: Any, message_id: Any, thread_id: Any = None
    ) -> None:
        self.handled.append(message_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
