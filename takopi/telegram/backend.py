"""The built-in ``telegram`` transport backend (entry point ``takopi.telegram.backend:BACKEND``).

``build_and_run`` is called by the transport worker on a thread without an event loop; it
validates ``[transports.telegram]``, checks the token with ``getMe`` and runs the chat loop
with ``anyio.run`` until the process is stopped. The bot token stays in this process and is
registered with the log redactor.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from takopi.backends import EngineBackend, SetupIssue
from takopi.backends_helpers import install_issue
from takopi.config import ConfigError
from takopi.logging import get_logger, register_secret
from takopi.runner_bridge import ExecBridgeConfig
from takopi.settings_view import AttributeView, ValidatedTable
from takopi.transports import SetupResult

from .bridge import (
    TelegramBridgeConfig,
    TelegramFilesConfig,
    TelegramPresenter,
    TelegramTopicsConfig,
    TelegramTransport,
    TelegramVoiceTranscriptionConfig,
)
from .client import TelegramClient
from .client_api import TelegramApiError, TelegramError, TelegramRetryAfter
from .loop import run_main_loop
from .outbox import default_interval
from .topics import TopicScope

log = get_logger(__name__)


def telegram_settings(transport_config: Any, config_path: Path | None = None) -> Any:
    """Validate ``[transports.telegram]`` (a dict or an already validated model). A table the
    supervisor validated already (:class:`~takopi.settings_view.ValidatedTable`) is read as
    it is: this transport then never imports pydantic."""
    if isinstance(transport_config, ValidatedTable):
        return AttributeView(transport_config)
    from pydantic import ValidationError

    from takopi.settings_tables import TelegramTransportSettings

    if isinstance(transport_config, TelegramTransportSettings):
        return transport_config
    if hasattr(transport_config, "model_dump"):
        transport_config = transport_config.model_dump()
    if not isinstance(transport_config, dict):
        raise ConfigError("Invalid [transports.telegram]; expected a table.")
    try:
        return TelegramTransportSettings.model_validate(transport_config)
    except ValidationError as exc:
        where = f" in {config_path}" if config_path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors()
        )
        raise ConfigError(f"Invalid [transports.telegram]{where}: {problems}") from None


def build_startup_message(
    runtime: Any,
    *,
    session_mode: str,
    show_resume_line: bool,
    default_engine: str | None = None,
    topics_enabled: bool = False,
    cwd: str | None = None,
    topics_scope: str | None = None,
) -> str:
    """``🐙 **takopi is ready**`` followed by default engine, engines, projects, mode…"""
    default = default_engine or runtime.default_engine
    available = list(runtime.available_engine_ids())
    notes: list[str] = []
    missing = list(runtime.missing_engine_ids())
    if missing:
        notes.append(f"not installed: {', '.join(missing)}")
    try:
        bad = list(runtime.engine_ids_with_status("bad_config"))
        failed = list(runtime.engine_ids_with_status("load_error"))
    except Exception:
        bad, failed = [], []
    if bad:
        notes.append(f"misconfigured: {', '.join(bad)}")
    if failed:
        notes.append(f"failed to load: {', '.join(failed)}")
    engines = ", ".join(available) or "none"
    if notes:
        engines = f"{engines} ({'; '.join(notes)})"
    projects = ", ".join(runtime.project_aliases()) or "none"
    lines = [
        f"default: `{default}`",
        f"engines: `{engines}`",
        f"projects: `{projects}`",
        f"mode: `{session_mode}`",
        "topics: `{}`".format(
            (f"enabled (scope={topics_scope})" if topics_scope else "enabled")
            if topics_enabled
            else "disabled"
        ),
        f"resume lines: `{'shown' if show_resume_line else 'hidden'}`",
        f"working in: `{cwd or os.getcwd()}`",
    ]
    return "🐙 **takopi is ready**\n\n" + "  \n".join(lines)


def files_config(files: Any) -> TelegramFilesConfig:
    """``[transports.telegram.files]`` settings as the chat loop's config."""
    return TelegramFilesConfig(
        enabled=bool(files.enabled),
        auto_put=bool(files.auto_put),
        auto_put_mode=str(files.auto_put_mode),
        uploads_dir=str(files.uploads_dir),
        allowed_user_ids=tuple(files.allowed_user_ids),
        deny_globs=tuple(files.deny_globs),
    )


def voice_config(settings: Any) -> TelegramVoiceTranscriptionConfig:
    """The ``voice_transcription*`` keys as the chat loop's config (the API key is
    registered with the log redactor)."""
    register_secret(settings.voice_transcription_api_key)
    return TelegramVoiceTranscriptionConfig(
        enabled=bool(settings.voice_transcription),
        max_bytes=int(settings.voice_max_bytes),
        model=str(settings.voice_transcription_model),
        base_url=settings.voice_transcription_base_url,
        api_key=settings.voice_transcription_api_key,
    )


async def _wait_for_bot(bot: TelegramClient, *, attempts: int = 5) -> dict[str, Any] | None:
    """``getMe``; a rejected token is a ConfigError, transient failures are retried."""
    delay = 1.0
    for _ in range(attempts):
        try:
            me = await bot.api.get_me()
        except TelegramRetryAfter as exc:
            await anyio.sleep(exc.retry_after)
            continue
        except TelegramApiError as exc:
            if exc.error_code in (401, 404):
                raise ConfigError(
                    "Telegram rejected the bot token (getMe: "
                    f"{exc.description}); check transports.telegram.bot_token."
                ) from None
            log.warning("telegram.get_me_failed", error=exc.description)
        except TelegramError as exc:
            log.warning("telegram.get_me_failed", error=exc.description)
        else:
            return me
        await anyio.sleep(delay)
        delay = min(delay * 2, 10.0)
    return None


async def run_telegram(
    settings: Any,
    *,
    runtime: Any,
    config_path: Path | None,
    final_notify: bool,
    default_engine_override: str | None = None,
    poll_timeout_s: int = 50,
    interval_for: Callable[[int | None], float] = default_interval,
) -> None:
    """Build the client, transport and presenter for ``settings`` and run the chat loop.

    ``interval_for`` (seconds per token of a chat's bucket) exists for tests; production uses
    Telegram's limits (see :mod:`.pacing`)."""
    bot = TelegramClient(settings.bot_token, api_url=settings.api_url, interval_for=interval_for)
    try:
        me = await _wait_for_bot(bot)
    except BaseException:
        await bot.api.close()
        raise
    async with bot:
        log.info(
            "telegram.ready",
            bot=(me or {}).get("username"),
            chat_id=settings.chat_id,
            session_mode=settings.session_mode,
        )
        transport = TelegramTransport(bot)
        presenter = TelegramPresenter(message_overflow=settings.message_overflow)
        startup = build_startup_message(
            runtime,
            session_mode=settings.session_mode,
            show_resume_line=settings.show_resume_line,
            default_engine=default_engine_override,
            topics_enabled=settings.topics.enabled,
            topics_scope=TopicScope(
                enabled=settings.topics.enabled,
                scope=settings.topics.scope,
                main_chat_id=settings.chat_id,
                runtime=runtime,
            ).label(),
        )
        cfg = TelegramBridgeConfig(
            bot=bot,
            runtime=runtime,
            chat_id=settings.chat_id,
            startup_msg=startup,
            exec_cfg=ExecBridgeConfig(
                transport=transport, presenter=presenter, final_notify=final_notify
            ),
            session_mode=settings.session_mode,
            show_resume_line=settings.show_resume_line,
            allowed_user_ids=tuple(settings.allowed_user_ids),
            forward_coalesce_s=settings.forward_coalesce_s,
            offline_backlog=settings.offline_backlog,
            config_path=config_path,
            poll_timeout_s=poll_timeout_s,
            bot_username=(me or {}).get("username"),
            media_group_debounce_s=settings.media_group_debounce_s,
            files=files_config(settings.files),
            voice_transcription=voice_config(settings),
            topics=TelegramTopicsConfig(
                enabled=bool(settings.topics.enabled), scope=settings.topics.scope
            ),
        )
        await run_main_loop(cfg)


def first_config_error(error: BaseException) -> ConfigError | None:
    """The first :class:`ConfigError` in ``error``, looking inside (nested) groups."""
    if isinstance(error, ConfigError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = first_config_error(inner)
            if found is not None:
                return found
    return None


class TelegramBackend:
    """The ``telegram`` transport backend."""

    id = "telegram"
    description = "Telegram bot (Bot API long polling)"

    def __init__(self) -> None:
        self._config_path: Path | None = None
        # The [transports.telegram] table this process was given, once validated.
        self._validated: Any = None

    def check_setup(
        self, engine_backend: EngineBackend, *, transport_override: str | None = None
    ) -> SetupResult:
        """Engine CLI on PATH, and (unless another transport is forced) a valid telegram table."""
        issues: list[SetupIssue] = []
        cli = engine_backend.cli_cmd or engine_backend.id
        if shutil.which(cli) is None:
            issues.append(install_issue(cli, engine_backend.install_cmd))
        config_path: Path | None = None
        if transport_override in (None, "telegram"):
            from takopi.config import resolve_config_path

            # the config this process was given (lock_token runs first in a worker), else
            # $TAKOPI_CONFIG_PATH / ~/.takopi/takopi.toml
            config_path = self._config_path or resolve_config_path(None)
        if transport_override in (None, "telegram") and self._validated is None:
            # (In a worker, lock_token already validated the table the supervisor read, env
            # overrides included: loading the settings again would only pull pydantic-settings,
            # ~3 MiB that would stay in the transport for good, to reach the same answer.)
            try:
                from takopi.settings import load_settings, require_telegram_config

                settings, config_path = load_settings(config_path)
                require_telegram_config(settings, config_path)
            except ConfigError:
                exists = config_path is not None and config_path.exists()
                issues.append(SetupIssue("configure telegram" if exists else "create a config"))
        return SetupResult(issues=tuple(issues), config_path=config_path)

    async def interactive_setup(self, *, force: bool) -> bool:
        """The onboarding wizard lives in the CLI (``takopi --onboard``); nothing to do here."""
        return False

    def lock_token(self, *, transport_config: Any, _config_path: Path | None = None) -> str | None:
        """The bot token (the supervisor fingerprints it for the lockfile)."""
        if _config_path is not None:
            self._config_path = Path(_config_path)
        try:
            settings = telegram_settings(transport_config, _config_path)
        except ConfigError:
            token = (
                transport_config.get("bot_token") if isinstance(transport_config, dict) else None
            )
            return token if isinstance(token, str) and token else None
        register_secret(settings.bot_token)
        self._validated = settings
        return str(settings.bot_token)

    def build_and_run(
        self,
        *,
        transport_config: Any,
        config_path: Path,
        runtime: Any,
        final_notify: bool,
        default_engine_override: str | None,
    ) -> None:
        """Validate the config and run the chat loop (blocks; owns its event loop)."""
        settings = telegram_settings(transport_config, config_path)
        register_secret(settings.bot_token)
        try:
            anyio.run(
                lambda: run_telegram(
                    settings,
                    runtime=runtime,
                    config_path=Path(config_path) if config_path is not None else None,
                    final_notify=final_notify,
                    default_engine_override=default_engine_override,
                )
            )
        except BaseExceptionGroup as group:
            # surface a ConfigError as itself (the worker maps it to EX_CONFIG)
            error = first_config_error(group)
            if error is not None:
                raise error from None
            raise


BACKEND = TelegramBackend()

__all__ = [
    "BACKEND",
    "TelegramBackend",
    "build_startup_message",
    "files_config",
    "run_telegram",
    "telegram_settings",
    "voice_config",
]
