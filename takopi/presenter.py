"""Presenters turn a progress snapshot into a transport-ready :class:`RenderedMessage`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from takopi.markdown import MarkdownFormatter, MarkdownParts, assemble_markdown_parts
from takopi.progress import ProgressState
from takopi.transport import RenderedMessage


@runtime_checkable
class Presenter(Protocol):
    """Renders progress and final messages for one transport."""

    def render_progress(
        self, state: ProgressState, *, elapsed_s: float, label: str = "working"
    ) -> RenderedMessage: ...

    def render_final(
        self, state: ProgressState, *, elapsed_s: float, status: str, answer: str
    ) -> RenderedMessage: ...


def trim_body(body: str | None, max_chars: int | None) -> str | None:
    """Cut ``body`` to ``max_chars`` characters, ending with ``…`` when cut."""
    if body is None or max_chars is None or len(body) <= max_chars:
        return body
    if max_chars <= 1:
        return "…"
    return body[: max_chars - 1] + "…"


class MarkdownPresenter:
    """Plain Markdown text (no ``extra``), built with :class:`MarkdownFormatter`.

    ``max_body_chars`` (None = unlimited) trims the final answer's body; the header and the
    footer (``ctx:`` and resume lines) are always kept whole.
    """

    def __init__(
        self,
        formatter: MarkdownFormatter | None = None,
        *,
        max_body_chars: int | None = None,
    ) -> None:
        self.formatter = formatter or MarkdownFormatter()
        self.max_body_chars = max_body_chars

    def render_progress(
        self, state: ProgressState, *, elapsed_s: float, label: str = "working"
    ) -> RenderedMessage:
        """The progress message (header, last actions, footer)."""
        parts = self.formatter.render_progress_parts(state, elapsed_s=elapsed_s, label=label)
        return RenderedMessage(text=assemble_markdown_parts(self._trim(parts)))

    def render_final(
        self, state: ProgressState, *, elapsed_s: float, status: str, answer: str
    ) -> RenderedMessage:
        """The final message (header with status, answer, footer)."""
        parts = self.formatter.render_final_parts(
            state, elapsed_s=elapsed_s, status=status, answer=answer
        )
        return RenderedMessage(text=assemble_markdown_parts(self._trim(parts)))

    def _trim(self, parts: MarkdownParts) -> MarkdownParts:
        if self.max_body_chars is None:
            return parts
        return MarkdownParts(
            header=parts.header,
            body=trim_body(parts.body, self.max_body_chars),
            footer=parts.footer,
        )


__all__ = ["MarkdownPresenter", "Presenter", "trim_body"]
