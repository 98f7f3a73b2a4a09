"""Telegram implementations of the bridge interfaces: `TelegramPresenter`, `TelegramTransport`,
and the config objects of the chat loop (`TelegramBridgeConfig` and friends).

``RenderedMessage.extra`` keys used here: ``entities`` (Bot API entities for ``text``),
``reply_markup`` (inline keyboard; progress messages carry the cancel button, terminal
messages clear it), ``followups`` (more ``RenderedMessage``\\ s to send after this one —
``message_overflow = "split"``), ``parse_mode`` (passed through when a plugin sets it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from takopi.logging import get_logger
from takopi.markdown import MarkdownFormatter, MarkdownParts
from takopi.progress import ProgressState
from takopi.runner_bridge import ExecBridgeConfig
from takopi.transport import ChannelId, MessageRef, RenderedMessage, SendOptions

from .client import BotClient
from .client_api import edit_was_noop
from .render import MAX_BODY_CHARS, prepare_telegram, prepare_telegram_multi
from .types import (
    TelegramCallbackQuery,
    TelegramIncomingMessage,
    TelegramIncomingUpdate,
    int_or_none,
)

CANCEL_CALLBACK_DATA = "takopi:cancel"
CANCEL_MARKUP: dict[str, Any] = {
    "inline_keyboard": [[{"text": "cancel", "callback_data": CANCEL_CALLBACK_DATA}]]
}
CLEAR_MARKUP: dict[str, Any] = {"inline_keyboard": []}

log = get_logger(__name__)


class TelegramPresenter:
    """Renders progress/final messages as Telegram text + entities.

    ``message_overflow``: ``"trim"`` (the final body is cut to 3500 Markdown chars) or
    ``"split"`` (the final answer becomes several messages, see ``followups``). Progress
    messages are always trimmed.
    """

    def __init__(
        self,
        formatter: MarkdownFormatter | None = None,
        *,
        message_overflow: Literal["trim", "split"] | str = "trim",
        max_body_chars: int = MAX_BODY_CHARS,
    ) -> None:
        self.formatter = formatter or MarkdownFormatter()
        self.message_overflow = message_overflow
        self.max_body_chars = max_body_chars

    def _message(self, parts: MarkdownParts, markup: dict[str, Any]) -> RenderedMessage:
        text, entities = prepare_telegram(
            parts.header, parts.body, parts.footer, max_body_chars=self.max_body_chars
        )
        return RenderedMessage(text=text, extra={"entities": entities, "reply_markup": markup})

    def render_progress(
        self, state: ProgressState, *, elapsed_s: float, label: str = "working"
    ) -> RenderedMessage:
        parts = self.formatter.render_progress_parts(state, elapsed_s=elapsed_s, label=label)
        markup = CLEAR_MARKUP if "cancelled" in label else CANCEL_MARKUP
        return self._message(parts, markup)

    def render_final(
        self, state: ProgressState, *, elapsed_s: float, status: str, answer: str
    ) -> RenderedMessage:
        parts = self.formatter.render_final_parts(
            state, elapsed_s=elapsed_s, status=status, answer=answer
        )
        return self.render_final_parts(parts)

    def render_final_parts(self, parts: MarkdownParts) -> RenderedMessage:
        """A terminal message from Markdown parts (used for journal deliveries too)."""
        if self.message_overflow != "split":
            return self._message(parts, CLEAR_MARKUP)
        rendered = prepare_telegram_multi(
            parts.header, parts.body, parts.footer, max_body_chars=self.max_body_chars
        )
        first_text, first_entities = rendered[0]
        followups = [
            RenderedMessage(text=text, extra={"entities": entities})
            for text, entities in rendered[1:]
        ]
        extra: dict[str, Any] = {"entities": first_entities, "reply_markup": CLEAR_MARKUP}
        if followups:
            extra["followups"] = followups
        return RenderedMessage(text=first_text, extra=extra)


class TelegramTransport:
    """:class:`takopi.transport.Transport` over a :class:`BotClient` (writes via the outbox)."""

    def __init__(self, bot: BotClient) -> None:
        self._bot = bot
        self._deleted: dict[tuple[int, int], None] = {}
        self._showing_progress: dict[tuple[int, int], None] = {}
        """Messages this transport put a progress keyboard on (not yet a final): editing
        one into a split answer is a first attempt, not a redelivery."""

    @property
    def bot(self) -> BotClient:
        return self._bot

    async def close(self) -> None:
        await self._bot.close()

    @staticmethod
    def _payload(message: RenderedMessage) -> dict[str, Any]:
        extra = message.extra or {}
        entities = extra.get("entities")
        markup = extra.get("reply_markup")
        return {
            "entities": entities if isinstance(entities, list) and entities else None,
            "parse_mode": extra.get("parse_mode"),
            "reply_markup": markup if isinstance(markup, dict) else None,
        }

    async def send(
        self,
        *,
        channel_id: ChannelId,
        message: RenderedMessage,
        options: SendOptions | None = None,
    ) -> MessageRef | None:
        options = options or SendOptions()
        chat_id = int_or_none(channel_id)
        if chat_id is None:
            log.warning("telegram.send.bad_channel", channel_id=str(channel_id))
            return None
        payload = self._payload(message)
        markup = payload["reply_markup"]
        if markup is not None and not markup.get("inline_keyboard"):
            payload["reply_markup"] = None  # a new message has no keyboard to clear
        reply_to = int_or_none(options.reply_to.message_id) if options.reply_to else None
        thread_id = int_or_none(options.thread_id)
        if thread_id is None and options.reply_to is not None:
            thread_id = int_or_none(options.reply_to.thread_id)
        replace = int_or_none(options.replace.message_id) if options.replace else None
        result = await self._bot.send_message(
            chat_id,
            message.text or "…",
            reply_to_message_id=reply_to,
            disable_notification=not options.notify,
            message_thread_id=thread_id,
            replace_message_id=replace,
            **payload,
        )
        if result is None:
            return None
        message_id = int_or_none(result.get("message_id"))
        if message_id is None:
            return None
        if replace is not None and message_id != replace:
            self._deleted[(chat_id, replace)] = None
            self._trim_deleted()
        if payload["reply_markup"] == CANCEL_MARKUP:
            self._remember_progress(chat_id, message_id)
        ref = MessageRef(channel_id=chat_id, message_id=message_id, raw=result, thread_id=thread_id)
        await self._send_followups(
            chat_id, message, reply_to=reply_to, thread_id=thread_id, notify=options.notify
        )
        return ref

    async def _send_followups(
        self,
        chat_id: int,
        message: RenderedMessage,
        *,
        reply_to: int | None,
        thread_id: int | None,
        notify: bool,
    ) -> bool:
        """Send the overflow parts of ``message``; False if any of them was not sent."""
        all_sent = True
        for followup in _followups(message):
            payload = self._payload(followup)
            payload["reply_markup"] = None
            sent = await self._bot.send_message(
                chat_id,
                followup.text or "…",
                reply_to_message_id=reply_to,
                disable_notification=not notify,
                message_thread_id=thread_id,
                **payload,
            )
            all_sent = all_sent and sent is not None
        return all_sent

    async def edit(
        self, *, ref: MessageRef, message: RenderedMessage, wait: bool = True
    ) -> MessageRef | None:
        chat_id = int_or_none(ref.channel_id)
        message_id = int_or_none(ref.message_id)
        if chat_id is None or message_id is None:
            return None
        payload = self._payload(message)
        if _followups(message) and payload["reply_markup"] != CANCEL_MARKUP:
            return await self._edit_split(ref, chat_id, message_id, message, payload)
        if payload["reply_markup"] == CANCEL_MARKUP:
            self._remember_progress(chat_id, message_id)
        else:
            self._showing_progress.pop((chat_id, message_id), None)
        result = await self._bot.edit_message_text(
            chat_id, message_id, message.text or "…", wait=wait, **payload
        )
        if wait and result is None:
            return None
        if _followups(message):  # a final keeping the pending mark (the progress keyboard)
            await self._send_overflow(ref, chat_id, message_id, message)
        return MessageRef(
            channel_id=chat_id,
            message_id=message_id,
            raw=result if isinstance(result, dict) else ref.raw,
            thread_id=ref.thread_id,
        )

    async def _send_overflow(
        self, ref: MessageRef, chat_id: int, message_id: int, message: RenderedMessage
    ) -> bool:
        """The overflow parts of the split answer edited into ``ref``, as silent replies;
        False if one of them was not sent."""
        return await self._send_followups(
            chat_id,
            message,
            reply_to=message_id,
            thread_id=int_or_none(ref.thread_id),
            notify=False,
        )

    async def _edit_split(
        self,
        ref: MessageRef,
        chat_id: int,
        message_id: int,
        message: RenderedMessage,
        payload: dict[str, Any],
    ) -> MessageRef | None:
        """Edit ``ref`` into the first part of a split answer and send the rest after it,
        idempotently: this may run again for the same answer (a journaled final redelivered
        after a restart lost its ack).

        Telegram answering "message is not modified" says the first part is there, not
        whether the rest was sent. So the first part's final form (its final keyboard) is
        only set once the rest went out: it is the commit. Tried first, it tells a repeat
        (nothing more to send) from a first attempt, which then marks the message pending
        (the progress keyboard back), sends the rest and commits. A repeat after a crash
        while the rest was going out finds the message pending and sends the rest again:
        overflow parts may repeat then. A message this transport still shows progress on is
        a first attempt: no commit is tried first. When a part cannot be sent the edit fails
        (None) without the commit, and the caller sends the whole answer anew.

        One window stays open: a crash (or a failed edit, for another transport) between a
        commit tried first that changed the message and the pending mark leaves the message
        looking committed with its overflow unsent."""
        text = message.text or "…"
        done = MessageRef(channel_id=chat_id, message_id=message_id, thread_id=ref.thread_id)
        first_attempt = (chat_id, message_id) in self._showing_progress
        self._showing_progress.pop((chat_id, message_id), None)
        if not first_attempt:
            committed = await self._bot.edit_message_text(
                chat_id, message_id, text, wait=True, **payload
            )
            if committed is None:
                return None
            done = MessageRef(
                channel_id=chat_id, message_id=message_id, raw=committed, thread_id=ref.thread_id
            )
            if edit_was_noop(committed):
                log.info(
                    "telegram.edit.split_already_delivered", chat_id=chat_id, message_id=message_id
                )
                return done
        pending = {**payload, "reply_markup": CANCEL_MARKUP}
        if (
            await self._bot.edit_message_text(chat_id, message_id, text, wait=True, **pending)
            is None
        ):
            self._remember_progress(chat_id, message_id)  # not committed: no probe next time
            return None
        if not await self._send_overflow(ref, chat_id, message_id, message):
            self._remember_progress(chat_id, message_id)  # still pending
            log.warning(
                "telegram.edit.split_overflow_failed", chat_id=chat_id, message_id=message_id
            )
            return None
        committed = await self._bot.edit_message_text(
            chat_id, message_id, text, wait=True, **payload
        )
        if committed is None:  # the answer is all there; only its keyboard is stale
            log.warning("telegram.edit.split_commit_failed", chat_id=chat_id, message_id=message_id)
            return done
        return MessageRef(
            channel_id=chat_id, message_id=message_id, raw=committed, thread_id=ref.thread_id
        )

    async def delete(self, *, ref: MessageRef) -> bool:
        chat_id = int_or_none(ref.channel_id)
        message_id = int_or_none(ref.message_id)
        if chat_id is None or message_id is None:
            return False
        if (chat_id, message_id) in self._deleted:
            return True  # already deleted when a reply replaced it
        ok = await self._bot.delete_message(chat_id, message_id)
        if ok:
            self._deleted[(chat_id, message_id)] = None
            self._trim_deleted()
        return ok

    def _remember_progress(self, chat_id: int, message_id: int) -> None:
        self._showing_progress[(chat_id, message_id)] = None
        while len(self._showing_progress) > 1024:
            self._showing_progress.pop(next(iter(self._showing_progress)))

    def _trim_deleted(self) -> None:
        while len(self._deleted) > 1024:
            self._deleted.pop(next(iter(self._deleted)))


def _followups(message: RenderedMessage) -> list[RenderedMessage]:
    """The overflow parts of a split answer (``extra["followups"]``)."""
    followups = (message.extra or {}).get("followups") or ()
    return [f for f in followups if isinstance(f, RenderedMessage)]


@dataclass(frozen=True, slots=True)
class TelegramFilesConfig:
    """``[transports.telegram.files]``: ``/file put|get`` and auto-put uploads."""

    enabled: bool = False
    auto_put: bool = True
    auto_put_mode: str = "upload"
    uploads_dir: str = "incoming"
    allowed_user_ids: tuple[int, ...] = ()
    deny_globs: tuple[str, ...] = (".git/**", ".env", ".envrc", "*.pem", ".ssh/**")


@dataclass(frozen=True, slots=True)
class TelegramTopicsConfig:
    """``[transports.telegram.topics]``: managed forum topics (see :mod:`.topics`)."""

    enabled: bool = False
    scope: str = "auto"


@dataclass(frozen=True, slots=True)
class TelegramVoiceTranscriptionConfig:
    """Voice transcription (``voice_transcription*`` keys of ``[transports.telegram]``)."""

    enabled: bool = False
    max_bytes: int = 10 * 1024 * 1024
    model: str = "gpt-4o-mini-transcribe"
    base_url: str | None = None
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class TelegramBridgeConfig:
    """Everything the chat loop needs."""

    bot: BotClient
    runtime: Any
    chat_id: int
    startup_msg: str
    exec_cfg: ExecBridgeConfig
    session_mode: Literal["stateless", "chat"] | str = "stateless"
    show_resume_line: bool = True
    allowed_user_ids: tuple[int, ...] = ()
    forward_coalesce_s: float = 1.0
    media_group_debounce_s: float = 1.0
    offline_backlog: Literal["notify", "run", "drop"] | str = "notify"
    chat_ids: tuple[int, ...] | None = None
    config_path: Path | None = None
    poll_timeout_s: int = 50
    bot_username: str | None = None
    voice_transcription: TelegramVoiceTranscriptionConfig = field(
        default_factory=TelegramVoiceTranscriptionConfig
    )
    files: TelegramFilesConfig = field(default_factory=TelegramFilesConfig)
    topics: TelegramTopicsConfig = field(default_factory=TelegramTopicsConfig)


def __getattr__(name: str) -> Any:
    # ``poll_updates`` / ``run_main_loop`` live in loop.py (which imports this module).
    if name in {"poll_updates", "run_main_loop"}:
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CANCEL_CALLBACK_DATA",
    "CANCEL_MARKUP",
    "CLEAR_MARKUP",
    "TelegramBridgeConfig",
    "TelegramCallbackQuery",
    "TelegramFilesConfig",
    "TelegramIncomingMessage",
    "TelegramIncomingUpdate",
    "TelegramPresenter",
    "TelegramTopicsConfig",
    "TelegramTransport",
    "TelegramVoiceTranscriptionConfig",
]
