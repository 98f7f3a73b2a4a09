"""``takopi doctor``: check the Telegram setup (token, chat, topics, files, voice)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import click

from takopi.cli.common import command_config_path, config_path_option, fail
from takopi.config import ConfigError
from takopi.logging import get_logger, suppress_logs

log = get_logger(__name__)

Status = Literal["ok", "warning", "error"]

TOKEN_INVALID = "skipped (token invalid)"


@dataclass(frozen=True, slots=True)
class Check:
    """One doctor line: ``- <label>: <status> (<detail>)``."""

    label: str
    status: Status
    detail: str
    reason: str | None = None
    """Why it failed, when the shown detail does not say (logged, not printed)."""

    def render(self) -> str:
        return f"- {self.label}: {self.status} ({self.detail})"


def files_check(files: Any) -> Check:
    """File transfer: disabled, restricted, or (warning) open to everyone."""
    if not files.enabled:
        return Check("file transfer", "ok", "disabled")
    if files.allowed_user_ids:
        return Check(
            "file transfer", "ok", f"restricted to {len(files.allowed_user_ids)} user id(s)"
        )
    return Check("file transfer", "warning", "enabled for all users")


def voice_check(telegram: Any) -> Check:
    """Voice transcription needs an API key when enabled."""
    if not telegram.voice_transcription:
        return Check("voice transcription", "ok", "disabled")
    if telegram.voice_transcription_api_key:
        return Check("voice transcription", "ok", "voice_transcription_api_key set")
    if os.environ.get("OPENAI_API_KEY"):
        return Check("voice transcription", "ok", "OPENAI_API_KEY set")
    return Check("voice transcription", "error", "API key not set")


async def telegram_checks(settings: Any, telegram: Any) -> list[Check]:
    """Token (getMe), chat (getChat) and topics checks against the Bot API."""
    from takopi.telegram.client_api import BotApi, TelegramError

    checks: list[Check] = []
    api = BotApi(telegram.bot_token, api_url=telegram.api_url, timeout_s=30.0)
    try:
        reason: str | None = None
        try:
            me = await api.get_me()
        except TelegramError as exc:
            me, reason = None, exc.description
        if not me:
            # the reference's wording; Telegram's own reason goes to the log
            checks.append(
                Check("telegram token", "error", "failed to fetch bot info", reason=reason)
            )
            checks.append(Check("chat_id", "error", TOKEN_INVALID))
            if telegram.topics.enabled:
                checks.append(Check("topics", "error", TOKEN_INVALID))
            else:
                checks.append(Check("topics", "ok", "disabled"))
            return checks
        name = me.get("username")
        checks.append(Check("telegram token", "ok", f"@{name}" if name else "valid"))
        chat_id = telegram.chat_id
        try:
            chat = await api.get_chat(chat_id)
        except TelegramError:
            chat = None
        if chat:
            checks.append(Check("chat_id", "ok", f"{chat.get('type', 'chat')} ({chat_id})"))
        else:
            checks.append(Check("chat_id", "error", f"unreachable ({chat_id})"))
        checks.append(await topics_check(api, settings, telegram, bot_id=int(me["id"])))
    finally:
        await api.close()
    return checks


async def topics_check(api: Any, settings: Any, telegram: Any, *, bot_id: int) -> Check:
    """Topics: ``disabled``, ``scope=<scope>`` when every chat in scope is a forum where the
    bot can manage topics, else the problems found."""
    from takopi.cli.telegram_checks import check_topics_chat

    if not telegram.topics.enabled:
        return Check("topics", "ok", "disabled")
    chats = [telegram.chat_id]
    if telegram.topics.scope in ("projects", "all"):
        chats += [p.chat_id for p in settings.projects.values() if p.chat_id is not None]
    problems = []
    for target in chats:
        result = await check_topics_chat(api, target, bot_id)
        if not result.ok:
            problems.append(result.detail)
    if problems:
        return Check("topics", "error", "; ".join(problems))
    return Check("topics", "ok", f"scope={telegram.topics.scope}")


@click.command("doctor", help="Check the Telegram setup.")
@config_path_option()
@click.pass_context
def doctor_cmd(ctx: click.Context, config_path: Path | None) -> None:
    from takopi.settings import load_settings, require_telegram_config

    path = command_config_path(ctx, config_path)
    try:
        settings, path = load_settings(path)
    except ConfigError as exc:
        fail(str(exc))
    transport = (ctx.find_root().obj or {}).get("transport") or settings.transport
    if transport != "telegram":
        fail("takopi doctor currently supports the telegram transport only.")
    try:
        telegram = require_telegram_config(settings, path)
    except ConfigError as exc:
        fail(str(exc))
    with suppress_logs("error"):
        checks = anyio.run(lambda: telegram_checks(settings, telegram))
    checks += [files_check(telegram.files), voice_check(telegram)]
    click.echo("takopi doctor")
    for check in checks:
        click.echo(check.render())
        if check.reason:
            log.error("doctor.check_failed", check=check.label, reason=check.reason)
    log.info("doctor.done", errors=sum(c.status == "error" for c in checks))
    if any(c.status == "error" for c in checks):
        raise SystemExit(1)


__all__ = [
    "Check",
    "doctor_cmd",
    "files_check",
    "telegram_checks",
    "topics_check",
    "voice_check",
]
