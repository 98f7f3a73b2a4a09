"""Interactive questions for the onboarding wizard and ``takopi init``.

:class:`Prompter` is the small interface the wizard talks to; :class:`TerminalPrompter` asks on
the terminal (line based, so it also works under a pseudo-terminal driven by a test), and
:class:`ScriptedPrompter` answers from a list (non-interactive tests). Ctrl+C, Ctrl+D and
Ctrl+Q abort with :class:`SetupAborted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import click

_ABORT_CHARS = ("\x03", "\x11")  # Ctrl+C, Ctrl+Q typed into a line


class SetupAborted(Exception):
    """The user cancelled an interactive question."""


@dataclass(frozen=True, slots=True)
class Choice:
    """One option of a :meth:`Prompter.select` question."""

    value: str
    label: str
    help: str = ""


class Prompter(Protocol):
    """What the wizard needs from a terminal."""

    def echo(self, text: str = "") -> None:
        """Show a line of text."""
        ...

    def confirm(self, question: str, *, default: bool) -> bool:
        """A y/n question; Enter takes ``default``."""
        ...

    def text(self, question: str, *, default: str | None = None) -> str:
        """A free-form answer (``default`` on Enter)."""
        ...

    def secret(self, question: str) -> str:
        """A hidden answer (bot token)."""
        ...

    def select(
        self, question: str, choices: Sequence[Choice], *, default: str | None = None
    ) -> str:
        """Pick one of ``choices`` (by number or value); returns its value."""
        ...


def _check_abort(answer: str) -> str:
    if any(ch in answer for ch in _ABORT_CHARS):
        raise SetupAborted()
    return answer


def parse_yes_no(answer: str, default: bool) -> bool | None:
    """``y``/``yes``/``n``/``no`` (any case); empty = ``default``; anything else = None."""
    value = answer.strip().lower()
    if not value:
        return default
    if value in ("y", "yes"):
        return True
    if value in ("n", "no"):
        return False
    return None


def resolve_choice(answer: str, choices: Sequence[Choice], default: str | None) -> str | None:
    """A choice's value from its 1-based number or its value; empty = ``default``."""
    value = answer.strip().lower()
    if not value:
        return default
    if value.isdigit() and 1 <= int(value) <= len(choices):
        return choices[int(value) - 1].value
    for choice in choices:
        if choice.value.lower() == value:
            return choice.value
    return None


class TerminalPrompter:
    """Asks on stdin/stdout with click (no curses: a pseudo-terminal can drive it)."""

    def echo(self, text: str = "") -> None:
        click.echo(text)

    def _ask(self, prompt: str, *, hide_input: bool = False) -> str:
        try:
            answer = click.prompt(
                prompt,
                default="",
                show_default=False,
                hide_input=hide_input,
                prompt_suffix=" ",
            )
        except (click.Abort, EOFError, KeyboardInterrupt):
            raise SetupAborted() from None
        return _check_abort(str(answer))

    def confirm(self, question: str, *, default: bool) -> bool:
        hint = "[Y/n]" if default else "[y/N]"
        while True:
            result = parse_yes_no(self._ask(f"{question} {hint}"), default)
            if result is not None:
                return result
            click.echo("please answer y or n.")

    def text(self, question: str, *, default: str | None = None) -> str:
        suffix = f" [{default}]" if default else ""
        while True:
            answer = self._ask(f"{question}{suffix}:").strip()
            if answer:
                return answer
            if default is not None:
                return default
            click.echo("an answer is required.")

    def secret(self, question: str) -> str:
        while True:
            answer = self._ask(f"{question}:", hide_input=True).strip()
            if answer:
                return answer
            click.echo("an answer is required.")

    def select(
        self, question: str, choices: Sequence[Choice], *, default: str | None = None
    ) -> str:
        click.echo(question)
        for index, choice in enumerate(choices, start=1):
            line = f"  {index}) {choice.label}"
            if choice.help:
                line += f" — {choice.help}"
            click.echo(line)
        numbers = [str(i) for i, c in enumerate(choices, start=1) if c.value == default]
        prompt = f"choose a number [{numbers[0]}]:" if numbers else "choose a number:"
        while True:
            picked = resolve_choice(self._ask(prompt), choices, default)
            if picked is not None:
                return picked
            click.echo(f"please enter a number from 1 to {len(choices)}.")


@dataclass
class ScriptedPrompter:
    """Answers questions from a list, in order (tests and non-interactive use).

    Each answer is the raw text a user would type (``""`` = Enter). Everything shown and asked
    is recorded in :attr:`transcript`. Running out of answers aborts like Ctrl+D.
    """

    answers: list[str]
    transcript: list[str] = field(default_factory=list)

    def __init__(self, answers: Iterable[str]) -> None:
        self.answers = list(answers)
        self.transcript = []

    def _next(self, prompt: str) -> str:
        self.transcript.append(f"? {prompt}")
        if not self.answers:
            raise SetupAborted()
        return _check_abort(self.answers.pop(0))

    def echo(self, text: str = "") -> None:
        self.transcript.append(text)

    def confirm(self, question: str, *, default: bool) -> bool:
        while True:
            result = parse_yes_no(self._next(question), default)
            if result is not None:
                return result

    def text(self, question: str, *, default: str | None = None) -> str:
        while True:
            answer = self._next(question).strip()
            if answer:
                return answer
            if default is not None:
                return default

    def secret(self, question: str) -> str:
        while True:
            answer = self._next(question).strip()
            if answer:
                return answer

    def select(
        self, question: str, choices: Sequence[Choice], *, default: str | None = None
    ) -> str:
        self.transcript.append(question)
        self.transcript.extend(f"  {c.value}: {c.label}" for c in choices)
        while True:
            picked = resolve_choice(self._next(question), choices, default)
            if picked is not None:
                return picked


__all__ = [
    "Choice",
    "Prompter",
    "ScriptedPrompter",
    "SetupAborted",
    "TerminalPrompter",
    "parse_yes_no",
    "resolve_choice",
]
