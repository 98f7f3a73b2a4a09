"""Markdown rendering of progress and final messages (behavior.md §1.7)."""

from __future__ import annotations

from takopi.events import EventFactory
from takopi.markdown import (
    MarkdownFormatter,
    MarkdownParts,
    assemble_markdown_parts,
    format_elapsed,
    shorten,
)
from takopi.model import ResumeToken, StartedEvent
from takopi.presenter import MarkdownPresenter, Presenter
from takopi.progress import ProgressState, ProgressTracker
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir

F = EventFactory("codex")
RESUME = "`codex resume abc`"


def fmt_resume(token: ResumeToken) -> str:
    return f"`codex resume {token.value}`"


def tracker_with(*events: object) -> ProgressTracker:
    tracker = ProgressTracker("codex")
    for event in events:
        tracker.note_event(event)  # type: ignore[arg-type]
    return tracker


def state_of(tracker: ProgressTracker, context_line: str | None = None) -> ProgressState:
    return tracker.snapshot(resume_formatter=fmt_resume, context_line=context_line)


def test_elapsed_formats() -> None:
    assert format_elapsed(0) == "0s"
    assert format_elapsed(59.9) == "59s"
    assert format_elapsed(60) == "1m 00s"
    assert format_elapsed(3599) == "59m 59s"
    assert format_elapsed(3600) == "1h 00m"
    assert format_elapsed(3600 * 26 + 5 * 60 + 7) == "26h 05m"
    assert format_elapsed(-5) == "0s"


def test_assemble_parts_skips_empty_sections() -> None:
    assert assemble_markdown_parts(MarkdownParts(header="h")) == "h"
    assert assemble_markdown_parts(MarkdownParts(header="h", body="b", footer="f")) == "h\n\nb\n\nf"
    assert assemble_markdown_parts(MarkdownParts(header="h", footer="f")) == "h\n\nf"


def test_progress_layout_header_body_footer_exact() -> None:
    tracker = tracker_with(
        StartedEvent(engine="codex", resume=ResumeToken("codex", "abc")),
        F.action_started(action_id="1", kind="command", title="pytest -q"),
        F.action_completed(action_id="2", kind="tool", title="read_file", ok=True),
    )
    parts = MarkdownFormatter().render_progress_parts(
        state_of(tracker, "`ctx: web @dev`"), elapsed_s=65
    )
    assert parts.header == "working · codex · 1m 05s · step 2"
    assert parts.body == "▸ `pytest -q`  \n✓ tool: read_file"
    assert parts.footer == "`ctx: web @dev`  \n" + RESUME
    text = assemble_markdown_parts(parts)
    assert text == (
        "working · codex · 1m 05s · step 2\n\n"
        "▸ `pytest -q`  \n✓ tool: read_file\n\n"
        "`ctx: web @dev`  \n`codex resume abc`"
    )


def test_starting_header_without_steps_or_footer() -> None:
    parts = MarkdownFormatter().render_progress_parts(
        ProgressTracker("claude").snapshot(), elapsed_s=0, label="starting"
    )
    assert parts == MarkdownParts(header="starting · claude · 0s", body=None, footer=None)


def test_glyphs_exit_codes_and_titles_by_kind() -> None:
    tracker = tracker_with(
        F.action_completed(
            action_id="c", kind="command", title="make", ok=False, detail={"exit_code": 2}
        ),
        F.action_started(action_id="u", kind="tool", title="grep"),
        F.action_updated(action_id="u", kind="tool", title="grep more"),
        F.action_completed(action_id="w", kind="web_search", title="anyio docs", ok=True),
        F.action_started(action_id="s", kind="subagent", title="explore"),
        F.action(
            phase="completed",
            action_id="e",
            kind="command",
            title="false",
            ok=None,
            detail={"exit_code": 1},
        ),
    )
    body = MarkdownFormatter().render_progress_parts(state_of(tracker), elapsed_s=1).body
    assert body is not None
    assert body.split("  \n") == [
        "✗ `make` (exit 2)",
        "↻ tool: grep more",
        "✓ searched: anyio docs",
        "▸ subagent: explore",
        "✗ `false` (exit 1)",
    ]


def test_note_and_warning_titles_are_plain() -> None:
    tracker = tracker_with(
        F.action_completed(action_id="n", kind="note", title="thinking", ok=True),
        F.action_completed(action_id="w", kind="warning", title="careful", ok=False),
    )
    body = MarkdownFormatter().render_progress_parts(state_of(tracker), elapsed_s=1).body
    assert body == "✓ thinking  \n✗ careful"


def test_file_changes_inline_max_three_and_relative_paths() -> None:
    token = set_run_base_dir("/repo")
    try:
        changes = [
            {"path": "/repo/a.py", "kind": "update"},
            {"path": "/repo/b.py", "kind": "add"},
            {"path": "/elsewhere/c.py", "kind": "delete"},
            {"path": "/repo/d.py"},
            {"path": "/repo/e.py", "kind": "add"},
        ]
        tracker = tracker_with(
            F.action_completed(
                action_id="f",
                kind="file_change",
                title="5 files",
                ok=True,
                detail={"changes": changes},
            )
        )
        body = MarkdownFormatter().render_progress_parts(state_of(tracker), elapsed_s=1).body
    finally:
        reset_run_base_dir(token)
    assert body == "✓ files: update `a.py`, add `b.py`, delete `/elsewhere/c.py`, …(2 more)"


def test_file_change_without_details_uses_title() -> None:
    tracker = tracker_with(
        F.action_completed(action_id="f", kind="file_change", title="2 files", ok=True)
    )
    body = MarkdownFormatter().render_progress_parts(state_of(tracker), elapsed_s=1).body
    assert body == "✓ files: 2 files"


def test_only_last_five_actions_in_first_seen_order() -> None:
    events = [
        F.action_completed(action_id=str(i), kind="note", title=f"n{i}", ok=True) for i in range(7)
    ]
    events.append(F.action_completed(action_id="0", kind="note", title="n0 again", ok=True))
    tracker = tracker_with(*events)
    parts = MarkdownFormatter().render_progress_parts(state_of(tracker), elapsed_s=1)
    assert parts.header.endswith("step 7")
    assert parts.body == "  \n".join(f"✓ n{i}" for i in range(2, 7))
    narrow = MarkdownFormatter(max_actions=2).render_progress_parts(state_of(tracker), elapsed_s=1)
    assert narrow.body == "✓ n5  \n✓ n6"
    none = MarkdownFormatter(max_actions=0).render_progress_parts(state_of(tracker), elapsed_s=1)
    assert none.body is None


def test_long_titles_are_shortened_and_resume_line_is_kept() -> None:
    long_cmd = "echo " + " ".join(f"word{i}" for i in range(200))
    tracker = tracker_with(
        StartedEvent(engine="codex", resume=ResumeToken("codex", "abc")),
        F.action_started(action_id="1", kind="command", title=long_cmd),
    )
    parts = MarkdownFormatter().render_progress_parts(state_of(tracker), elapsed_s=3)
    assert parts.body is not None
    inner = parts.body.removeprefix("▸ `").removesuffix("`")
    assert len(inner) <= 300
    assert inner.endswith("…")
    assert inner.startswith("echo word0 word1")
    assert parts.footer == RESUME


def test_shorten_unbreakable_text_is_hard_cut() -> None:
    assert shorten("x" * 400, 300) == "x" * 299 + "…"
    assert shorten("short", 300) == "short"
    assert shorten("a b c", None) == "a b c"


def test_final_drops_action_lines_and_keeps_footer() -> None:
    tracker = tracker_with(
        StartedEvent(engine="codex", resume=ResumeToken("codex", "abc")),
        F.action_completed(action_id="1", kind="command", title="ls", ok=True),
    )
    parts = MarkdownFormatter().render_final_parts(
        state_of(tracker, "`ctx: web`"), elapsed_s=7200, status="done", answer="  all good \n"
    )
    assert parts == MarkdownParts(
        header="done · codex · 2h 00m · step 1",
        body="all good",
        footer="`ctx: web`  \n" + RESUME,
    )


def test_final_with_empty_answer_has_no_body() -> None:
    parts = MarkdownFormatter().render_final_parts(
        ProgressTracker("codex").snapshot(), elapsed_s=1, status="error", answer=""
    )
    assert parts == MarkdownParts(header="error · codex · 1s")


def test_presenter_trims_body_but_keeps_header_and_resume_line() -> None:
    presenter = MarkdownPresenter(max_body_chars=100)
    assert isinstance(presenter, Presenter)
    tracker = tracker_with(StartedEvent(engine="codex", resume=ResumeToken("codex", "abc")))
    rendered = presenter.render_final(
        state_of(tracker, "`ctx: web`"), elapsed_s=2, status="done", answer="y" * 5000
    )
    header, body, footer = rendered.text.split("\n\n")
    assert header == "done · codex · 2s"
    assert body == "y" * 99 + "…"
    assert footer == "`ctx: web`  \n" + RESUME
    assert rendered.extra == {}


def test_presenter_progress_matches_formatter() -> None:
    tracker = tracker_with(F.action_started(action_id="1", kind="command", title="ls"))
    rendered = MarkdownPresenter().render_progress(state_of(tracker), elapsed_s=4, label="queued")
    assert rendered.text == "queued · codex · 4s · step 1\n\n▸ `ls`"
