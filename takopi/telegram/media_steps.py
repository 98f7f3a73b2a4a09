"""The routing steps for files, albums and voice notes (see :mod:`takopi.telegram.routing`
and :mod:`.media`).

- ``media_group`` (before ``context``): a file of an album, with file transfer on, waits in
  a :class:`~takopi.telegram.media_groups.MediaGroupBuffer`; the complete album is put (or
  its caption run, in prompt mode);
- ``file``: ``/file put|get`` (with the other built-in commands, before the trigger check);
- ``voice`` and ``document`` (after the trigger check): a voice note is transcribed, an
  upload saved.

Fetching and transcribing take a while, so these steps work in the background and stop the
chain; a transcript or a captioned upload then re-enters it after the step (``route.text``
is the prompt), so it takes the same prompt path as text: coalescing, a reply to a running
run, directives, topics and sessions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from anyio.abc import TaskGroup

from .background import Background
from .intake import HeldMessages
from .media import MediaHandlers
from .media_groups import MediaGroupBuffer, album_lead
from .routing import Route
from .scope import ChatScope
from .types import TelegramIncomingMessage

RouteAfter = Callable[[str, Route], Awaitable[str | None]]
""":meth:`MessageRouter.route_after`: continue a route after the named step."""


class MediaGroupStep:
    """Collects the files of an album (file transfer on) until ``delay_s`` of quiet."""

    name = "media_group"

    def __init__(
        self,
        media: MediaHandlers,
        *,
        task_group: TaskGroup,
        delay_s: float,
        scope_of: Callable[[TelegramIncomingMessage], ChatScope],
        route_after: RouteAfter,
        prompt_after: str = "document",
    ) -> None:
        self.media = media
        self.scope_of = scope_of
        self.route_after = route_after
        self.prompt_after = prompt_after
        self.buffer = MediaGroupBuffer(delay_s=delay_s, task_group=task_group, on_flush=self._flush)

    async def handle(self, route: Route) -> bool:
        if not self.media.buffers(route.msg):
            return False
        self.buffer.add(route.msg)
        return True

    async def _flush(self, messages: list[TelegramIncomingMessage], held: HeldMessages) -> None:
        # Handled as the message whose caption runs (the run replies to it), else the first.
        with held.handled_as(album_lead(messages)):
            prompt = await self.media.album_prompt(messages)
            if prompt is None:
                return
            lead, text = prompt
            route = Route(msg=lead, text=text, scope=self.scope_of(lead))
            await self.route_after(self.prompt_after, route)


@dataclass
class FileStep:
    """``/file put|get`` (the disabled hint when file transfer is off)."""

    media: MediaHandlers
    background: Background
    name: str = "file"

    async def handle(self, route: Route) -> bool:
        if route.command is None or route.command.name != "file":
            return False
        self.background.spawn(self.media.file_command, route.msg, route.command.args_text)
        return True


@dataclass
class VoiceStep:
    """Voice notes: transcribed, then on to the prompt (the hint when transcription is off)."""

    media: MediaHandlers
    background: Background
    route_after: RouteAfter
    name: str = "voice"

    async def handle(self, route: Route) -> bool:
        if not route.msg.has_voice:
            return False
        self.background.spawn(self._transcribe, route)
        return True

    async def _transcribe(self, route: Route) -> None:
        prompt = await self.media.voice_prompt(route.msg)
        if prompt is not None:
            await _continue_as_prompt(self.route_after, self.name, route, prompt)


@dataclass
class DocumentStep:
    """Documents, photos and videos: auto-put (ignored when file transfer is off); a caption
    in prompt mode goes on to the prompt."""

    media: MediaHandlers
    background: Background
    route_after: RouteAfter
    name: str = "document"

    async def handle(self, route: Route) -> bool:
        if not route.msg.has_document:
            return False
        self.background.spawn(self._upload, route)
        return True

    async def _upload(self, route: Route) -> None:
        prompt = await self.media.document_prompt(route.msg)
        if prompt is not None:
            await _continue_as_prompt(self.route_after, self.name, route, prompt)


async def _continue_as_prompt(
    route_after: RouteAfter, step: str, route: Route, prompt: str
) -> None:
    # the text is a prompt now: a leading /word of it is no command (as in the reference)
    route.text = prompt
    route.command = None
    await route_after(step, route)


__all__ = ["DocumentStep", "FileStep", "MediaGroupStep", "VoiceStep"]
