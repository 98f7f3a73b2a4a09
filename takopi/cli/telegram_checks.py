"""Telegram checks the CLI runs itself (``takopi doctor``, the onboarding wizard).

They use the telegram plugin's Bot API client (:mod:`takopi.telegram.client_api`); the API
base URL comes from ``transports.telegram.api_url`` (or the ``TAKOPI__TRANSPORTS__TELEGRAM__API_URL``
environment override), so tests point them at the fake Bot API server.
"""

from __future__ import annotations

import os
from typing import Any

from takopi.telegram.client_api import DEFAULT_API_URL
from takopi.telegram.topics import TopicsCheck, check_topics_chat

API_URL_ENV = "TAKOPI__TRANSPORTS__TELEGRAM__API_URL"


def api_url_from(raw_config: dict[str, Any] | None) -> str:
    """The Bot API base URL: env override, then ``[transports.telegram] api_url``, then default."""
    env = os.environ.get(API_URL_ENV, "").strip()
    if env:
        return env
    transports = (raw_config or {}).get("transports")
    telegram = transports.get("telegram") if isinstance(transports, dict) else None
    value = telegram.get("api_url") if isinstance(telegram, dict) else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return DEFAULT_API_URL


def describe_chat_kind(chat_type: str | None, *, is_forum: bool = False) -> str:
    """``private chat``, ``group``, ``supergroup``, ``forum supergroup``, ``channel``."""
    if chat_type == "private":
        return "private chat"
    if chat_type == "supergroup" and is_forum:
        return "forum supergroup"
    return chat_type or "chat"


__all__ = [
    "API_URL_ENV",
    "TopicsCheck",
    "api_url_from",
    "check_topics_chat",
    "describe_chat_kind",
]
