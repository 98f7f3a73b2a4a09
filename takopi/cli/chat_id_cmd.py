"""``takopi chat-id [--token T] [--project ALIAS]``: find a chat's id by writing to the bot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import click

from takopi.cli.common import command_config_path, config_path_option, fail
from takopi.cli.init_cmd import load_config_for_edit
from takopi.cli.telegram_checks import api_url_from
from takopi.config import ConfigError, read_config, write_config
from takopi.logging import get_logger, suppress_logs

log = get_logger(__name__)


def _configured_token(data: dict[str, Any]) -> str | None:
    transports = data.get("transports")
    telegram = transports.get("telegram") if isinstance(transports, dict) else None
    token = telegram.get("bot_token") if isinstance(telegram, dict) else None
    return token.strip() if isinstance(token, str) and token.strip() else None


def _refuse_while_running(path: Path) -> None:
    """Telegram lets one poller read a bot's updates: a running takopi would steal them."""
    from takopi.cli.common import display_path
    from takopi.cli.ctl_client import ControlClient, ControlError

    try:
        status = ControlClient(path, timeout=3.0).call("status")
    except ControlError:
        return
    if status.get("transport") == "telegram":
        fail(
            f"takopi (pid {status.get('pid')}) is running for {display_path(path)} and reads "
            "this bot's updates; stop it first (`takopictl stop`)."
        )


@click.command("chat-id", help="Print the id of the chat you message the bot from.")
@click.option("--token", default=None, help="Bot token (default: the one in the config).")
@click.option("--project", default=None, help="Also save it as projects.<ALIAS>.chat_id.")
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Give up after this many seconds (default: wait until a message arrives).",
)
@config_path_option()
@click.pass_context
def chat_id_cmd(
    ctx: click.Context,
    token: str | None,
    project: str | None,
    timeout: float | None,
    config_path: Path | None,
) -> None:
    from takopi.telegram.onboarding import capture_chat_id, check_bot_token

    path = command_config_path(ctx, config_path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = read_config(path)
        except ConfigError as exc:
            if token is None or project is not None:
                fail(str(exc))
    project_key: str | None = None
    if project is not None:
        projects = raw.get("projects")
        matches = [
            k
            for k in (projects if isinstance(projects, dict) else {})
            if k.lower() == project.lower()
        ]
        if not matches:
            fail(f"Unknown project {project!r}; run `takopi init {project}` first.")
        project_key = matches[0]
    token = (token or "").strip() or _configured_token(raw)
    if not token:
        fail("no bot token; pass --token or run `takopi --onboard`.")
    if token == _configured_token(raw):
        _refuse_while_running(path)
    api_url = api_url_from(raw)
    with suppress_logs("warning"):
        bot = anyio.run(lambda: check_bot_token(token, api_url=api_url))
        if bot is None:
            fail("telegram did not accept the bot token (getMe failed).")
        name = f"@{bot.username}" if bot.username else "the bot"
        click.echo(
            f"send /start to {name} in the chat you want takopi to use (private chat or group)"
        )
        chat = anyio.run(lambda: capture_chat_id(token, api_url=api_url, timeout_s=timeout))
    if chat is None:
        fail("no message arrived in time.")
    click.echo(f"chat_id = {chat.chat_id}")
    if project_key is None:
        return
    data = load_config_for_edit(path)
    table = data.get("projects", {}).get(project_key)
    if not isinstance(table, dict):
        fail(f"Unknown project {project!r}; run `takopi init {project}` first.")
    table["chat_id"] = chat.chat_id
    from takopi.settings import validate_settings

    try:
        validate_settings(data, config_path=path, use_env=False)
    except ConfigError as exc:
        fail(str(exc))
    write_config(data, path)
    log.info("chat_id.saved", project=project_key, chat_id=chat.chat_id)
    click.echo(f"updated projects.{project_key}.chat_id = {chat.chat_id}")


__all__ = ["chat_id_cmd"]
