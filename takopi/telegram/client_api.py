"""Raw Telegram Bot API over httpx: one JSON POST per method, errors mapped to exceptions.

``BotApi.request`` raises :class:`TelegramRetryAfter` (429), :class:`TelegramTransientError`
(5xx, network errors, timeouts, undecodable answers) and :class:`TelegramApiError` (any other
``ok=false``). The typed helpers (``get_me``, ``send_message``…) are thin wrappers; callers
that must never fail use :meth:`BotApi.call_safe`. The bot token only ever appears in the
request URL, which is never logged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from takopi.logging import get_logger, redact_text, register_secret

from .tls import https_verify
from .unicode import scrub_surrogates

DEFAULT_API_URL = "https://api.telegram.org"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_RETRY_AFTER_S = 5.0
NOT_MODIFIED = "message is not modified"
NOT_MODIFIED_KEY = "takopi_not_modified"
"""Set (True) in the message dict an edit returns when Telegram answered "not modified"."""

log = get_logger(__name__)

_T = TypeVar("_T")
_D = TypeVar("_D")


class TelegramError(Exception):
    """Base class of Bot API failures."""

    def __init__(self, method: str, description: str) -> None:
        super().__init__(f"{method}: {description}")
        self.method = method
        self.description = description


class TelegramRetryAfter(TelegramError):
    """Telegram asked us to slow down for ``retry_after`` seconds."""

    def __init__(self, method: str, retry_after: float, description: str = "") -> None:
        super().__init__(method, description or f"retry after {retry_after}")
        self.retry_after = retry_after


class TelegramTransientError(TelegramError):
    """A failure worth retrying: 5xx, network error, timeout, garbage answer."""


class TelegramFileTooLargeError(TelegramError):
    """A file download stopped because the file is bigger than the caller allows."""

    def __init__(self, method: str, limit: int) -> None:
        super().__init__(method, f"file is larger than {limit} bytes")
        self.limit = limit


class TelegramApiError(TelegramError):
    """A definitive API error (4xx other than 429)."""

    def __init__(self, method: str, description: str, error_code: int | None = None) -> None:
        super().__init__(method, description)
        self.error_code = error_code

    @property
    def not_modified(self) -> bool:
        """The edit was a no-op (Telegram answers 400 for identical content)."""
        return NOT_MODIFIED in self.description


def _form_fields(payload: dict[str, Any]) -> dict[str, str]:
    """Multipart form values: strings as they are, everything else as JSON."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in payload.items()
    }


def _retry_after(payload: Any) -> float:
    params = payload.get("parameters") if isinstance(payload, dict) else None
    value = params.get("retry_after") if isinstance(params, dict) else None
    try:
        seconds = float(value) if isinstance(value, int | float | str) else -1.0
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
    return seconds if seconds >= 0 else DEFAULT_RETRY_AFTER_S


async def or_default(
    method: str,
    call: Callable[[], Awaitable[_T]],
    default: _D,
    *,
    raise_retry_after: bool = True,
) -> _T | _D:
    """Await ``call()``; a :class:`TelegramError` is logged and gives ``default``.

    A 429 still raises :class:`TelegramRetryAfter` (so that callers can back off) unless
    ``raise_retry_after`` is false, for fire-and-forget calls.
    """
    try:
        return await call()
    except TelegramError as exc:
        if raise_retry_after and isinstance(exc, TelegramRetryAfter):
            raise
        log.warning(
            "telegram.request_failed",
            method=method,
            error=exc.description,
            kind=type(exc).__name__,
        )
        return default


class BotApi:
    """Telegram Bot API client (``{api_url}/bot{token}/{method}``)."""

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not token:
            raise ValueError("bot token must not be empty")
        register_secret(token)
        self._base = f"{api_url.rstrip('/')}/bot{token}"
        self._file_base = f"{api_url.rstrip('/')}/file/bot{token}"
        self._owns_client = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout_s, verify=https_verify())

    async def close(self) -> None:
        """Close the underlying HTTP client (if we created it)."""
        if self._owns_client:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> Any:
        """Call ``method``; return its ``result`` or raise a :class:`TelegramError`.

        With ``files`` (field -> ``(filename, content)``) the call is sent as
        ``multipart/form-data`` (``sendDocument``); the other parameters become form fields.
        """
        # a lone surrogate cannot be sent (no UTF-8 form): U+FFFD instead of an exception
        payload = scrub_surrogates({k: v for k, v in (params or {}).items() if v is not None})
        try:
            kwargs: dict[str, Any] = (
                {
                    "data": _form_fields(payload),
                    "files": {k: (scrub_surrogates(n), c) for k, (n, c) in files.items()},
                }
                if files
                else {"json": payload}
            )
            if timeout_s is not None:
                kwargs["timeout"] = timeout_s
            response = await self._http.post(f"{self._base}/{method}", **kwargs)
        except httpx.HTTPError as exc:
            raise TelegramTransientError(
                method, redact_text(f"{type(exc).__name__}: {exc}")
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code == 429 or (
            isinstance(data, dict) and data.get("error_code") == 429
        ):
            raise TelegramRetryAfter(
                method,
                _retry_after(data),
                str(data.get("description", "")) if isinstance(data, dict) else "",
            )
        if not isinstance(data, dict):
            raise TelegramTransientError(
                method, f"undecodable response (HTTP {response.status_code})"
            )
        if data.get("ok") is True:
            return data.get("result")
        description = redact_text(str(data.get("description") or f"HTTP {response.status_code}"))
        code = data.get("error_code")
        if response.status_code >= 500 or (isinstance(code, int) and code >= 500):
            raise TelegramTransientError(method, description)
        raise TelegramApiError(method, description, code if isinstance(code, int) else None)

    async def call_safe(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Like :meth:`request`, but errors are logged and give ``None`` (429 still raises)."""
        return await or_default(method, lambda: self.request(method, params), None)

    # -- typed helpers (raise TelegramError) --------------------------------------------
    async def get_me(self) -> dict[str, Any] | None:
        result = await self.request("getMe")
        return result if isinstance(result, dict) else None

    async def get_updates(
        self,
        *,
        offset: int | None = None,
        timeout_s: int = 50,
        allowed_updates: list[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        result = await self.request(
            "getUpdates",
            {
                "offset": offset,
                "timeout": timeout_s,
                "allowed_updates": allowed_updates,
                "limit": limit,
            },
            timeout_s=timeout_s + 30.0,
        )
        if not isinstance(result, list):
            raise TelegramTransientError("getUpdates", "result is not a list")
        return result

    async def send_message(
        self,
        *,
        chat_id: int,
        text: str,
        reply_to_message_id: int | None = None,
        disable_notification: bool | None = None,
        message_thread_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "text": text,
            "disable_notification": disable_notification,
            "message_thread_id": message_thread_id,
            "entities": entities or None,
            "parse_mode": parse_mode,
            "reply_markup": reply_markup,
            "link_preview_options": {"is_disabled": True},
        }
        if reply_to_message_id is not None:
            params["reply_to_message_id"] = reply_to_message_id
            params["allow_sending_without_reply"] = True
        result = await self.request("sendMessage", params)
        return result if isinstance(result, dict) else None

    async def edit_message_text(
        self,
        *,
        chat_id: int,
        message_id: int,
        text: str,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        params = {
            "chat_id": chat_id,
            "message_id": message_id,
            "text": text,
            "entities": entities or None,
            "parse_mode": parse_mode,
            "reply_markup": reply_markup,
            "link_preview_options": {"is_disabled": True},
        }
        try:
            result = await self.request("editMessageText", params)
        except TelegramApiError as exc:
            if exc.not_modified:
                return {
                    "message_id": message_id,
                    "chat": {"id": chat_id},
                    "text": text,
                    NOT_MODIFIED_KEY: True,
                }
            raise
        return result if isinstance(result, dict) else None

    async def delete_message(self, *, chat_id: int, message_id: int) -> bool:
        result = await self.request("deleteMessage", {"chat_id": chat_id, "message_id": message_id})
        return bool(result)

    async def set_my_commands(
        self,
        commands: list[dict[str, str]],
        *,
        scope: dict[str, Any] | None = None,
        language_code: str | None = None,
    ) -> bool:
        result = await self.request(
            "setMyCommands",
            {"commands": commands, "scope": scope, "language_code": language_code},
        )
        return bool(result)

    async def answer_callback_query(
        self, callback_query_id: str, *, text: str | None = None, show_alert: bool | None = None
    ) -> bool:
        result = await self.request(
            "answerCallbackQuery",
            {"callback_query_id": callback_query_id, "text": text, "show_alert": show_alert},
        )
        return bool(result)

    async def get_chat(self, chat_id: int) -> dict[str, Any] | None:
        result = await self.request("getChat", {"chat_id": chat_id})
        return result if isinstance(result, dict) else None

    async def get_chat_member(self, chat_id: int, user_id: int) -> dict[str, Any] | None:
        result = await self.request("getChatMember", {"chat_id": chat_id, "user_id": user_id})
        return result if isinstance(result, dict) else None

    # -- forum topics -------------------------------------------------------------------
    async def create_forum_topic(self, chat_id: int, name: str) -> dict[str, Any] | None:
        """``createForumTopic``: the new ``ForumTopic`` (``message_thread_id``, ``name``)."""
        result = await self.request("createForumTopic", {"chat_id": chat_id, "name": name})
        return result if isinstance(result, dict) else None

    async def edit_forum_topic(self, chat_id: int, message_thread_id: int, name: str) -> bool:
        """``editForumTopic`` (rename); renaming to the current name counts as success."""
        try:
            result = await self.request(
                "editForumTopic",
                {"chat_id": chat_id, "message_thread_id": message_thread_id, "name": name},
            )
        except TelegramApiError as exc:
            if "TOPIC_NOT_MODIFIED" in exc.description:
                return True
            raise
        return bool(result)

    async def get_file(self, file_id: str) -> dict[str, Any] | None:
        """``getFile``: the ``File`` object (``file_path`` is what :meth:`download_file`
        takes)."""
        result = await self.request("getFile", {"file_id": file_id})
        return result if isinstance(result, dict) else None

    async def download_file(self, file_path: str, *, max_bytes: int | None = None) -> bytes:
        """The content of ``{api_url}/file/bot<token>/<file_path>``.

        The body is streamed; past ``max_bytes`` the download stops with
        :class:`TelegramFileTooLargeError`, so an oversized file is never held in memory.
        """
        method = "downloadFile"
        url = f"{self._file_base}/{file_path.lstrip('/')}"
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code == 429:
                    await response.aread()
                    try:
                        data = response.json()
                    except ValueError:
                        data = None
                    raise TelegramRetryAfter(method, _retry_after(data))
                if response.status_code >= 500:
                    raise TelegramTransientError(method, f"HTTP {response.status_code}")
                if response.status_code != 200:
                    raise TelegramApiError(
                        method, f"HTTP {response.status_code}", response.status_code
                    )
                declared = response.headers.get("content-length")
                if (
                    max_bytes is not None
                    and declared
                    and declared.isdigit()
                    and int(declared) > max_bytes
                ):
                    raise TelegramFileTooLargeError(method, max_bytes)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TelegramFileTooLargeError(method, max_bytes)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise TelegramTransientError(
                method, redact_text(f"{type(exc).__name__}: {exc}")
            ) from None

    async def send_document(
        self,
        *,
        chat_id: int,
        filename: str,
        content: bytes,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        disable_notification: bool | None = None,
    ) -> dict[str, Any] | None:
        """``sendDocument`` with ``content`` uploaded as ``filename`` (multipart)."""
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "caption": caption,
            "message_thread_id": message_thread_id,
            "disable_notification": disable_notification,
        }
        if reply_to_message_id is not None:
            params["reply_to_message_id"] = reply_to_message_id
            params["allow_sending_without_reply"] = True
        result = await self.request("sendDocument", params, files={"document": (filename, content)})
        return result if isinstance(result, dict) else None


def edit_was_noop(result: object) -> bool:
    """Whether an ``editMessageText`` result says the message already showed that content."""
    return isinstance(result, dict) and result.get(NOT_MODIFIED_KEY) is True


__all__ = [
    "DEFAULT_API_URL",
    "NOT_MODIFIED_KEY",
    "BotApi",
    "TelegramApiError",
    "TelegramError",
    "TelegramFileTooLargeError",
    "TelegramRetryAfter",
    "TelegramTransientError",
    "edit_was_noop",
    "or_default",
]
