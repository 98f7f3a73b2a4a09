"""A fake Telegram Bot API server for tests: a real HTTP server on 127.0.0.1.

It keeps chats, users, messages and their edits, serves ``getUpdates`` with long-poll
semantics (offset confirms updates), enforces the 4096-character limit (UTF-16 units, after
entities), validates entities, answers 400 "message is not modified", and can inject faults:
429 with ``retry_after``, 5xx, slow responses and dropped connections. With
``enforce_limits()`` (off by default) it also answers 429 like Telegram's flood control does
when a chat, a group or the whole bot writes too fast (see :class:`RateLimits`).

Files: users can post documents, photos, videos, voice notes and albums
(``send_user_document``, ``send_user_photo``, ``send_user_voice``); ``getFile`` and the
download URL ``/file/bot<token>/<file_path>`` serve their content (Telegram's 20 MiB
``getFile`` limit applies), and the bot's ``sendDocument`` uploads (multipart, 50 MiB limit)
are kept with their bytes (``FakeMessage.document``).

Usage::

    server = BotApiServer()
    base_url = server.start()            # "http://127.0.0.1:<port>"
    server.add_chat(1001)                # private chat with user 1001
    msg = server.send_user_message(1001, "hello")
    server.wait_for(lambda: server.bot_messages(1001), timeout=10)
    server.stop()

Everything is thread-safe: the server runs on its own threads, so it can be driven from sync
tests, from async tests, and from other processes (over HTTP) alike.

Parts, one job each: ``records`` (stored messages and files, limits, the API error), ``state``
(the shared state and its lock), ``chats`` (world setup, user actions, inspection),
``messages`` (getUpdates, sendMessage, edits, deletes), ``files`` (user files, getFile,
downloads, sendDocument), ``topics`` (forum topics), ``faults`` (injected failures), ``limits`` (flood control),
``http_handler`` (the HTTP side) and ``server`` (:class:`BotApiServer`, all of them together).
"""

from .faults import Fault
from .limits import RateLimits
from .records import (
    DEFAULT_TOKEN,
    ENTITY_TYPES,
    MAX_GET_FILE_BYTES,
    MAX_SEND_DOCUMENT_BYTES,
    MAX_TEXT_UTF16,
    BotApiError,
    FakeDocument,
    FakeFile,
    FakeMessage,
    utf16_len,
)
from .server import BotApiServer

__all__ = [
    "DEFAULT_TOKEN",
    "ENTITY_TYPES",
    "MAX_GET_FILE_BYTES",
    "MAX_SEND_DOCUMENT_BYTES",
    "MAX_TEXT_UTF16",
    "BotApiError",
    "BotApiServer",
    "FakeDocument",
    "FakeFile",
    "FakeMessage",
    "Fault",
    "RateLimits",
    "utf16_len",
]
