"""Property-based fuzzing of progress and final messages (:mod:`takopi.markdown` and the
Telegram presenter): whatever an engine reports — titles, commands, file changes, exit codes,
answers of any size and content — the rendered message fits Telegram and is accepted by it."""

from __future__ import annotations

from typing import Any, get_args

from hypothesis import given
from hypothesis import strategies as st

from takopi.markdown import MarkdownFormatter
from takopi.model import Action, ActionEvent, ActionKind, ResumeToken, StartedEvent
from takopi.progress import ProgressTracker
from takopi.telegram.bridge import TelegramPresenter
from takopi.telegram.render import MAX_MESSAGE_UTF16
from tests.fuzz.strategies import json_values, odd_text
from tests.fuzz.test_fuzz_render import assert_valid_message, units

KINDS = list(get_args(ActionKind))
_titles = st.one_of(
    odd_text(max_size=60),
    st.builds(lambda t, n: t * n, odd_text(min_size=1, max_size=5), st.integers(100, 3000)),
    st.sampled_from(["/home/u/repo/src/x.py", "cd /home/u/repo && make", "`rm -rf /`"]),
)
_details = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "exit_code": st.one_of(st.integers(-300, 300), st.booleans(), json_values),
            "changes": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {}, optional={"path": _titles, "kind": st.one_of(odd_text(), json_values)}
                    ),
                    max_size=6,
                ),
                json_values,
            ),
        },
    ),
)
events = st.lists(
    st.builds(
        lambda aid, kind, title, detail, phase, ok: ActionEvent(
            engine="codex",
            action=Action(id=aid, kind=kind, title=title, detail=detail),
            phase=phase,
            ok=ok,
        ),
        st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
        st.sampled_from(KINDS),
        _titles,
        _details,
        st.sampled_from(["started", "updated", "completed"]),
        st.one_of(st.none(), st.booleans()),
    ),
    max_size=12,
)
answers = st.one_of(
    odd_text(max_size=200),
    st.builds(lambda t, n: t * n, odd_text(min_size=1, max_size=20), st.integers(50, 800)),
)


def _state(action_events: list[Any], token: str | None, ctx: str | None) -> Any:
    tracker = ProgressTracker("codex")
    if token is not None:
        tracker.note_event(StartedEvent(engine="codex", resume=ResumeToken("codex", token)))
    for event in action_events:
        tracker.note_event(event)
    return tracker.snapshot(
        resume_formatter=lambda t: f"`codex resume {t.value}`", context_line=ctx
    )


tokens = st.one_of(st.none(), st.uuids().map(str))
ctx_lines = st.one_of(st.none(), st.just("`ctx: api @feat/x`"))


@given(events, tokens, ctx_lines, st.floats(0, 10**7), st.integers(0, 20))
def test_progress_messages_fit_telegram(
    action_events: list[Any], token: str | None, ctx: str | None, elapsed: float, shown: int
) -> None:
    presenter = TelegramPresenter(MarkdownFormatter(max_actions=shown))
    message = presenter.render_progress(_state(action_events, token, ctx), elapsed_s=elapsed)
    assert units(message.text) <= MAX_MESSAGE_UTF16
    assert_valid_message(message.text, message.extra["entities"])
    if token is not None:
        assert message.text.endswith(f"codex resume {token}")


@given(events, tokens, ctx_lines, answers, st.sampled_from(["trim", "split"]))
def test_final_messages_fit_telegram(
    action_events: list[Any], token: str | None, ctx: str | None, answer: str, overflow: str
) -> None:
    presenter = TelegramPresenter(message_overflow=overflow)
    state = _state(action_events, token, ctx)
    message = presenter.render_final(state, elapsed_s=3.0, status="done", answer=answer)
    rendered = [message, *message.extra.get("followups", [])]
    for part in rendered:
        assert units(part.text) <= MAX_MESSAGE_UTF16
        assert_valid_message(part.text, part.extra["entities"])
        if token is not None:
            # every message of the answer carries the resume line, whole
            assert part.text.endswith(f"codex resume {token}")
