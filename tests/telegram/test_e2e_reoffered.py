"""The telegram loop ignores a message its runtime says was answered already (Telegram
offered it again after its confirmation was lost): no run, no command reply, no
offline-backlog notice, nothing reported handled; other answers of ``note_incoming``
(``None``, ``True``: runtimes that predate the check) mean a new message."""

from __future__ import annotations

from typing import Any

from takopi.protocol.runs import ALREADY_ANSWERED
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT, make_runtime
from tests.telegram.intake_runtime import IntakeRuntime


class _AnsweringRuntime(IntakeRuntime):
    """Answers ``ALREADY_ANSWERED`` for the messages in ``answered`` and ``legacy`` (an old
    runtime's None, or True) for the others."""

    def __init__(self, inner: Any, legacy: Any) -> None:
        super().__init__(inner)
        self._legacy = legacy
        self.answered: set[int] = set()

    def answer(self, message_id: int) -> Any:
        return ALREADY_ANSWERED if message_id in self.answered else self._legacy


def _run(server: Any, fake_codex: Any, harness_factory: Any, tmp_path: Any, legacy: Any) -> None:
    runtime = _AnsweringRuntime(make_runtime(tmp_path / "takopi.toml"), legacy)
    sent = [
        server.send_user_message(CHAT, "a prompt answered already"),
        server.send_user_message(CHAT, "/ctx"),  # a command
        server.send_user_message(CHAT, "offline, answered already", date=1),  # backlog
    ]
    runtime.answered = {m["message_id"] for m in sent}
    fresh = server.send_user_message(CHAT, "a new prompt")
    h = harness_factory(runtime=runtime).start()
    assert "ok: a new prompt" in h.final_for(CHAT, fresh["message_id"]).text
    wait_until(lambda: fresh["message_id"] in runtime.handled)
    wait_until(lambda: server.pending_updates() == 0)  # all confirmed
    assert runtime.taken == [m["message_id"] for m in [*sent, fresh]]
    for msg in sent:
        assert [
            m for m in server.bot_messages(CHAT) if m.reply_to_message_id == msg["message_id"]
        ] == []
        assert msg["message_id"] not in runtime.handled
    assert [c["prompt"] for c in fake_codex.calls()] == ["a new prompt"]


def test_messages_answered_already_get_nothing(server, fake_codex, harness_factory, tmp_path):
    _run(server, fake_codex, harness_factory, tmp_path, legacy=True)


def test_a_runtime_answering_none_means_new_messages(server, fake_codex, harness_factory, tmp_path):
    """``None`` (a runtime or plugin that returns nothing) is a new message: the fresh prompt
    runs as before, alongside ignored ones."""
    _run(server, fake_codex, harness_factory, tmp_path, legacy=None)
