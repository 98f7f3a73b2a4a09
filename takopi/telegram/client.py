"""`TelegramClient`: the Bot API client the transport uses — writes go through the outbox.

Reads (``getUpdates``, ``getMe``, ``getChat``…) go straight to the API; writes
(``sendMessage``, ``editMessageText``, ``deleteMessage``) are keyed, prioritised, paced and
retried by :class:`~takopi.telegram.outbox.TelegramOutbox`. Use it as an async context manager
so the outbox dispatcher runs; outside one, writes run directly (unpaced).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
import httpx

from takopi.logging import get_logger

from .client_api import (
    DEFAULT_API_URL,
    BotApi,
    TelegramError,
    TelegramFileTooLargeError,
    TelegramRetryAfter,
    TelegramTransientError,
    or_default,
)
from .outbox import (
    DELETE_PRIORITY,
    EDIT_PRIORITY,
    SEND_PRIORITY,
    TelegramOutbox,
)
from .pacing import (
    GLOBAL_RATE_PER_S,
    PACING_ENV,
    Pacing,
    default_interval,
    is_group_chat_id,
    pacing_from_env,
)

log = get_logger(__name__)

_T = TypeVar("_T")

READ_ATTEMPTS = 4
"""How often a file read (``getFile``, download) is tried on 429 / transient errors."""
MAX_READ_RETRY_AFTER_S = 60.0


@runtime_checkable
class BotClient(Protocol):
    """What the Telegram transport needs from a Bot API client."""

    async def close(self) -> None: ...

    async def get_me(self) -> dict[str, Any] | None: ...

    async def get_updates(
        self,
        offset: int | None,
        timeout_s: int = 50,
        allowed_updates: list[str] | None = None,
    ) -> list[dict[str, Any]] | None: ...

    async def send_message(
        self,
        chat_id: int,
        text: str,
        reply_to_message_id: int | None = None,
        disable_notification: bool | None = False,
        message_thread_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        *,
        replace_message_id: int | None = None,
    ) -> dict[str, Any] | None: ...

    async def edit_message_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        *,
        wait: bool = True,
    ) -> dict[str, Any] | None: ...

    async def delete_message(self, chat_id: int, message_id: int) -> bool: ...

    async def set_my_commands(
        self,
        commands: list[dict[str, str]],
        *,
        scope: dict[str, Any] | None = None,
        language_code: str | None = None,
    ) -> bool: ...

    async def answer_callback_query(
        self, callback_query_id: str, text: str | None = None, show_alert: bool | None = None
    ) -> bool: ...

    async def get_chat(self, chat_id: int) -> dict[str, Any] | None: ...

    async def get_chat_member(self, chat_id: int, user_id: int) -> dict[str, Any] | None: ...

    async def get_file(self, file_id: str) -> dict[str, Any] | None: ...

    async def download_file(
        self, file_path: str, *, max_bytes: int | None = None
    ) -> bytes | None: ...

    async def send_document(
        self,
        chat_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        disable_notification: bool | None = False,
    ) -> dict[str, Any] | None: ...


async def _read_with_retries(method: str, call: Callable[[], Awaitable[_T]]) -> _T | None:
    """``call()`` with a few retries on 429 (after ``retry_after``) and transient errors;
    other failures are logged and give None. :class:`TelegramFileTooLargeError` propagates."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return await call()
        except TelegramFileTooLargeError:
            raise
        except TelegramRetryAfter as exc:
            if attempt == READ_ATTEMPTS:
                log.warning("telegram.request_failed", method=method, error=exc.description)
                return None
            await anyio.sleep(min(exc.retry_after, MAX_READ_RETRY_AFTER_S))
        except TelegramTransientError as exc:
            if attempt == READ_ATTEMPTS:
                log.warning("telegram.request_failed", method=method, error=exc.description)
                return None
            await anyio.sleep(0.5 * attempt)
        except TelegramError as exc:
            log.warning(
                "telegram.request_failed",
                method=method,
                error=exc.description,
                kind=type(exc).__name__,
            )
            return None
    return None  # pragma: no cover - the loop always returns


class TelegramClient:
    """Bot API client with an outbox (see module docstring)."""

    def __init__(
        self,
        token: str | BotApi,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout_s: float = 120.0,
        http_client: httpx.AsyncClient | None = None,
        interval_for: Callable[[int | None], float] = default_interval,
        pacing: Pacing | None = None,
        global_rate: int = GLOBAL_RATE_PER_S,
        max_attempts: int = 8,
    ) -> None:
        """``interval_for(chat)``: seconds per token of a chat's bucket (``0``: unpaced);
        ``pacing``: how the buckets are spent, by default what ``TAKOPI_TELEGRAM_PACING``
        names (``bucket``, the default, or ``reference``) — see :mod:`takopi.telegram.pacing`.
        """
        self.api = (
            token
            if isinstance(token, BotApi)
            else BotApi(token, api_url=api_url, timeout_s=timeout_s, http_client=http_client)
        )
        if pacing is None:
            pacing, unknown = pacing_from_env()
            if unknown is not None:
                log.warning(
                    "telegram.pacing_unknown", variable=PACING_ENV, value=unknown, using=pacing.name
                )
            elif pacing.name != "bucket":
                log.info("telegram.pacing", pacing=pacing.name)
        self.outbox = TelegramOutbox(
            interval_for=interval_for,
            pacing=pacing,
            global_rate=global_rate,
            max_attempts=max_attempts,
        )

    async def __aenter__(self) -> TelegramClient:
        await self.outbox.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return await self.outbox.__aexit__(*exc)
        finally:
            await self.api.close()

    async def close(self) -> None:
        await self.outbox.close()
        await self.api.close()

    # -- reads (not queued) --------------------------------------------------------------
    async def get_me(self) -> dict[str, Any] | None:
        return await or_default("getMe", self.api.get_me, None)

    async def get_updates(
        self,
        offset: int | None,
        timeout_s: int = 50,
        allowed_updates: list[str] | None = None,
    ) -> list[dict[str, Any]] | None:
        """One long poll. ``None`` on failure (logged); raises TelegramRetryAfter on 429."""
        return await or_default(
            "getUpdates",
            lambda: self.api.get_updates(
                offset=offset, timeout_s=timeout_s, allowed_updates=allowed_updates
            ),
            None,
        )

    async def get_chat(self, chat_id: int) -> dict[str, Any] | None:
        return await or_default("getChat", lambda: self.api.get_chat(chat_id), None)

    async def get_chat_member(self, chat_id: int, user_id: int) -> dict[str, Any] | None:
        return await or_default(
            "getChatMember", lambda: self.api.get_chat_member(chat_id, user_id), None
        )

    async def create_forum_topic(self, chat_id: int, name: str) -> dict[str, Any] | None:
        """``createForumTopic``; None on failure (logged)."""
        return await or_default(
            "createForumTopic", lambda: self.api.create_forum_topic(chat_id, name), None
        )

    async def edit_forum_topic(self, chat_id: int, message_thread_id: int, name: str) -> bool:
        """``editForumTopic``; False on failure (logged)."""
        return await or_default(
            "editForumTopic",
            lambda: self.api.edit_forum_topic(chat_id, message_thread_id, name),
            False,
        )

    async def answer_callback_query(
        self, callback_query_id: str, text: str | None = None, show_alert: bool | None = None
    ) -> bool:
        return await or_default(
            "answerCallbackQuery",
            lambda: self.api.answer_callback_query(
                callback_query_id, text=text, show_alert=show_alert
            ),
            False,
            raise_retry_after=False,
        )

    async def set_my_commands(
        self,
        commands: list[dict[str, str]],
        *,
        scope: dict[str, Any] | None = None,
        language_code: str | None = None,
    ) -> bool:
        return await or_default(
            "setMyCommands",
            lambda: self.api.set_my_commands(commands, scope=scope, language_code=language_code),
            False,
            raise_retry_after=False,
        )

    async def get_file(self, file_id: str) -> dict[str, Any] | None:
        """``getFile`` (retried on 429 and transient errors; None when it fails)."""
        return await _read_with_retries("getFile", lambda: self.api.get_file(file_id))

    async def download_file(self, file_path: str, *, max_bytes: int | None = None) -> bytes | None:
        """A file's content (None when the download fails). Raises
        :class:`~takopi.telegram.client_api.TelegramFileTooLargeError` past ``max_bytes``."""
        return await _read_with_retries(
            "downloadFile", lambda: self.api.download_file(file_path, max_bytes=max_bytes)
        )

    # -- writes (queued) -----------------------------------------------------------------
    async def send_document(
        self,
        chat_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        disable_notification: bool | None = False,
    ) -> dict[str, Any] | None:
        """Send ``content`` as a document named ``filename`` (queued like any send)."""

        async def execute() -> Any:
            return await self.api.send_document(
                chat_id=chat_id,
                filename=filename,
                content=content,
                caption=caption,
                reply_to_message_id=reply_to_message_id,
                message_thread_id=message_thread_id,
                disable_notification=disable_notification,
            )

        return await self.outbox.enqueue(  # type: ignore[no-any-return]
            self.outbox.unique_key("send"),
            chat_id=chat_id,
            priority=SEND_PRIORITY,
            execute=execute,
            label="sendDocument",
        )

    async def send_message(
        self,
        chat_id: int,
        text: str,
        reply_to_message_id: int | None = None,
        disable_notification: bool | None = False,
        message_thread_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        *,
        replace_message_id: int | None = None,
    ) -> dict[str, Any] | None:
        """Send a message; with ``replace_message_id`` the old message is deleted after the
        new one is sent — and if sending fails for good, the old message is edited into the
        new content instead, so the content is never lost."""

        async def execute() -> Any:
            return await self.api.send_message(
                chat_id=chat_id,
                text=text,
                reply_to_message_id=reply_to_message_id,
                disable_notification=disable_notification,
                message_thread_id=message_thread_id,
                entities=entities,
                parse_mode=parse_mode,
                reply_markup=reply_markup,
            )

        if replace_message_id is not None:
            self.outbox.drop_pending(("edit", chat_id, replace_message_id))
            key: Any = ("send", chat_id, replace_message_id)
        else:
            key = self.outbox.unique_key("send")
        result = await self.outbox.enqueue(
            key, chat_id=chat_id, priority=SEND_PRIORITY, execute=execute, label="sendMessage"
        )
        if replace_message_id is None:
            return result  # type: ignore[no-any-return]
        if result is not None:
            await self._delete(chat_id, replace_message_id, wait=False)
            return result  # type: ignore[no-any-return]
        log.warning(
            "telegram.replace_send_failed",
            chat_id=chat_id,
            message_id=replace_message_id,
            fallback="edit",
        )
        return await self.edit_message_text(
            chat_id,
            replace_message_id,
            text,
            entities=entities,
            parse_mode=parse_mode,
            reply_markup=reply_markup if reply_markup is not None else {"inline_keyboard": []},
        )

    async def edit_message_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        *,
        wait: bool = True,
    ) -> dict[str, Any] | None:
        """Edit a message's text. Edits of one message are coalesced (latest wins)."""

        async def execute() -> Any:
            return await self.api.edit_message_text(
                chat_id=chat_id,
                message_id=message_id,
                text=text,
                entities=entities,
                parse_mode=parse_mode,
                reply_markup=reply_markup,
            )

        return await self.outbox.enqueue(  # type: ignore[no-any-return]
            ("edit", chat_id, message_id),
            chat_id=chat_id,
            priority=EDIT_PRIORITY,
            execute=execute,
            label="editMessageText",
            wait=wait,
        )

    async def delete_message(self, chat_id: int, message_id: int) -> bool:
        """Delete a message (pending edits of it are dropped first)."""
        return await self._delete(chat_id, message_id, wait=True)

    async def _delete(self, chat_id: int, message_id: int, *, wait: bool) -> bool:
        self.outbox.drop_pending(("edit", chat_id, message_id))

        async def execute() -> Any:
            return await self.api.delete_message(chat_id=chat_id, message_id=message_id)

        result = await self.outbox.enqueue(
            ("delete", chat_id, message_id),
            chat_id=chat_id,
            priority=DELETE_PRIORITY,
            execute=execute,
            label="deleteMessage",
            wait=wait,
        )
        return bool(result) or not wait


__all__ = ["BotClient", "TelegramClient", "is_group_chat_id"]
