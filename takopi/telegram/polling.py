"""Long polling of ``getUpdates`` (offset handling, 429 and failure back-off)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from takopi.logging import get_logger

from .client import BotClient
from .client_api import TelegramRetryAfter
from .parsing import parse_update
from .types import TelegramIncomingUpdate

ALLOWED_UPDATES = ["message", "callback_query"]
POLL_FAILURE_SLEEP_S = 2.0

log = get_logger(__name__)


async def poll_raw_updates(
    source: Any,
    *,
    offset: int | None = None,
    timeout_s: int = 50,
    allowed_updates: list[str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> AsyncIterator[dict[str, Any]]:
    """Long-poll ``getUpdates`` forever, yielding raw updates and advancing the offset.

    ``source`` is a :class:`BotClient` or anything with a ``.bot`` (e.g. the bridge config).
    Failures are logged and retried after 2 s; 429 waits ``retry_after``.
    """
    bot: BotClient = getattr(source, "bot", source)
    allowed = allowed_updates if allowed_updates is not None else ALLOWED_UPDATES
    while True:
        try:
            updates = await bot.get_updates(offset, timeout_s=timeout_s, allowed_updates=allowed)
        except TelegramRetryAfter as exc:
            log.info("loop.get_updates.retry_after", retry_after=exc.retry_after)
            await sleep(exc.retry_after)
            continue
        if updates is None:
            log.warning("loop.get_updates.failed")
            await sleep(POLL_FAILURE_SLEEP_S)
            continue
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if isinstance(update_id, int) and not isinstance(update_id, bool):
                offset = max(offset or 0, update_id + 1)
            yield update


async def poll_updates(
    source: Any,
    *,
    offset: int | None = None,
    timeout_s: int | None = None,
) -> AsyncIterator[TelegramIncomingUpdate]:
    """Long-poll forever, yielding parsed updates (malformed ones are logged and skipped).

    ``source`` is the bridge config (``run_main_loop`` pollers receive it) or a bot client;
    the poll timeout defaults to the config's ``poll_timeout_s`` (else 50 s)."""
    timeout = timeout_s if timeout_s is not None else int(getattr(source, "poll_timeout_s", 50))
    async for raw in poll_raw_updates(source, offset=offset, timeout_s=timeout):
        try:
            update = parse_update(raw)
        except Exception as exc:  # parse_update handles known shapes; never stop polling
            log.warning("telegram.update.malformed", reason=f"{type(exc).__name__}: {exc}")
            continue
        if update is not None:
            yield update


async def drain_backlog(bot: BotClient) -> int | None:
    """Confirm every pending update without handling it; returns the next offset."""
    offset: int | None = None
    drained = 0
    while True:
        try:
            updates = await bot.get_updates(offset, timeout_s=0, allowed_updates=ALLOWED_UPDATES)
        except TelegramRetryAfter as exc:
            await anyio.sleep(exc.retry_after)
            continue
        if not updates:
            break
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if isinstance(update_id, int):
                offset = max(offset or 0, update_id + 1)
        drained += len(updates)
    log.info("startup.backlog.drained", count=drained)
    return offset


__all__ = ["ALLOWED_UPDATES", "drain_backlog", "poll_raw_updates", "poll_updates"]
