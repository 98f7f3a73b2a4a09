"""The onboarding wizard (``takopi`` on first run, ``takopi --onboard``): behavior.md §1.2.

Steps: bot token (checked with ``getMe``), workflow (assistant / workspace / handoff), chat
capture (the next message sent to the bot), default engine, save. Every question goes through a
:class:`~takopi.cli.prompts.Prompter`, so the same code runs on a terminal and from a script.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from takopi.cli.common import display_path
from takopi.cli.engines_info import EngineInfo, engine_infos
from takopi.cli.prompts import Choice, Prompter, SetupAborted
from takopi.cli.telegram_checks import api_url_from, check_topics_chat, describe_chat_kind
from takopi.config import ConfigError, ensure_table, read_config, write_config
from takopi.logging import get_logger, suppress_logs
from takopi.telegram.client_api import BotApi
from takopi.telegram.onboarding import (
    BotIdentity,
    CapturedChat,
    capture_chat_id,
    check_bot_token,
    mask_token,
)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Workflow:
    """What one workflow choice writes to ``[transports.telegram]``, and how it is shown."""

    id: str
    label: str
    preview: tuple[str, ...]
    session_mode: str
    topics: bool
    show_resume_line: bool


WORKFLOWS: tuple[Workflow, ...] = (
    Workflow(
        "assistant",
        "assistant (ongoing chat, /new to reset)",
        (
            "assistant: one ongoing chat",
            "  you  fix the flaky login test",
            "  bot  done · codex · 41s",
            "       fixed: the test raced the session timer.",
            "  you  now add a regression test     <- same session, no reply needed",
            "  you  /new                          <- starts over",
        ),
        session_mode="chat",
        topics=False,
        show_resume_line=False,
    ),
    Workflow(
        "workspace",
        "workspace (projects + branches, i'll set those up)",
        (
            "workspace: a forum group, one topic per project and branch",
            "  [topic: api @login-fix]",
            "  you  fix the flaky login test      <- runs in api, on branch login-fix",
            "  bot  done · codex · 41s",
            "       fixed: the test raced the session timer.",
            "       ctx: api @login-fix",
        ),
        session_mode="chat",
        topics=True,
        show_resume_line=False,
    ),
    Workflow(
        "handoff",
        "handoff (reply to continue, terminal resume)",
        (
            "handoff: every message starts a new run",
            "  you  fix the flaky login test",
            "  bot  done · codex · 41s",
            "       fixed: the test raced the session timer.",
            "       codex resume 0199a2f4-...     <- reply to continue, or paste in a terminal",
        ),
        session_mode="stateless",
        topics=False,
        show_resume_line=True,
    ),
)

BOTFATHER_STEPS = (
    "to create a bot:",
    "  1. open a chat with @BotFather in Telegram",
    "  2. send /newbot and follow the questions",
    "  3. copy the token it gives you (it looks like 123456789:ABCdef...)",
)


@dataclass
class WizardResult:
    """What the wizard collected (``saved`` is False when the user stopped before writing)."""

    saved: bool
    bot: BotIdentity | None = None
    workflow: Workflow | None = None
    chat: CapturedChat | None = None
    default_engine: str | None = None


TokenChecker = Callable[[str, str], BotIdentity | None]
ChatCapturer = Callable[[str, str], CapturedChat | None]


def _check_token(token: str, api_url: str) -> BotIdentity | None:
    return anyio.run(lambda: check_bot_token(token, api_url=api_url))


def _capture(token: str, api_url: str) -> CapturedChat | None:
    return anyio.run(lambda: capture_chat_id(token, api_url=api_url))


def _validate_topics(token: str, api_url: str, chat_id: int, bot_id: int) -> tuple[bool, str]:
    async def check() -> tuple[bool, str]:
        api = BotApi(token, api_url=api_url, timeout_s=30.0)
        try:
            result = await check_topics_chat(api, chat_id, bot_id)
        finally:
            await api.close()
        return result.ok, result.detail

    return anyio.run(check)


def _read_existing(config_path: Path, prompter: Prompter) -> dict[str, Any]:
    """The config to merge into; a malformed file is backed up to ``<name>.bak`` first."""
    if not config_path.exists():
        return {}
    try:
        return read_config(config_path)
    except ConfigError as exc:
        backup = config_path.with_name(config_path.name + ".bak")
        shutil.copy2(config_path, backup)
        prompter.echo(f"warning: {exc}")
        prompter.echo(f"the old file was copied to {display_path(backup)}; starting fresh.")
        log.warning("onboarding.config_backup", path=str(backup))
        return {}


def merge_onboarding(
    data: dict[str, Any],
    *,
    bot_token: str,
    chat_id: int,
    workflow: Workflow,
    default_engine: str | None,
) -> dict[str, Any]:
    """Merge the wizard's answers into ``data`` (other keys, projects included, are kept)."""
    data.pop("bot_token", None)
    data.pop("chat_id", None)
    data["transport"] = "telegram"
    transports = ensure_table(data, "transports")
    telegram = ensure_table(transports, "telegram", label="transports.telegram")
    telegram["bot_token"] = bot_token
    telegram["chat_id"] = chat_id
    telegram["session_mode"] = workflow.session_mode
    telegram["show_resume_line"] = workflow.show_resume_line
    topics = ensure_table(telegram, "topics", label="transports.telegram.topics")
    topics.pop("mode", None)
    topics["enabled"] = workflow.topics
    topics["scope"] = "auto"
    if default_engine:
        data["default_engine"] = default_engine
    return data


class Wizard:
    """One run of the onboarding wizard against ``config_path``."""

    def __init__(
        self,
        prompter: Prompter,
        *,
        config_path: Path,
        engines: Sequence[EngineInfo] | None = None,
        check_token: TokenChecker = _check_token,
        capture_chat: ChatCapturer = _capture,
    ) -> None:
        self.io = prompter
        self.config_path = config_path
        self.engines = engines
        self.check_token = check_token
        self.capture_chat = capture_chat
        raw: dict[str, Any] | None = None
        try:
            raw = read_config(config_path) if config_path.exists() else None
        except ConfigError:
            raw = None
        self.api_url = api_url_from(raw)
        self._allowlist = _allowlist_of(raw)

    # -- steps ---------------------------------------------------------------------------------
    def step_token(self) -> tuple[str, BotIdentity]:
        """Step 1: ask for the bot token until ``getMe`` accepts one (or the user gives up)."""
        self.io.echo("step 1: bot token")
        if not self.io.confirm("do you already have a bot token from @BotFather?", default=True):
            for line in BOTFATHER_STEPS:
                self.io.echo(line)
        while True:
            token = self.io.secret("paste your bot token")
            self.io.echo(f"checking {mask_token(token)} ...")
            bot = self.check_token(token, self.api_url)
            if bot is not None:
                self.io.echo(f"connected to @{bot.username or bot.id}")
                return token, bot
            self.io.echo("telegram did not accept that token (or could not be reached).")
            if not self.io.confirm("try again?", default=True):
                raise SetupAborted()

    def step_workflow(self) -> Workflow:
        """Step 2: assistant, workspace or handoff."""
        self.io.echo("")
        self.io.echo("step 2: pick your workflow")
        for workflow in WORKFLOWS:
            self.io.echo("")
            for line in workflow.preview:
                self.io.echo(line)
        self.io.echo("")
        choices = [Choice(w.id, w.label) for w in WORKFLOWS]
        picked = self.io.select("how will you use takopi?", choices, default="assistant")
        return next(w for w in WORKFLOWS if w.id == picked)

    def step_chat(
        self, token: str, bot: BotIdentity, workflow: Workflow
    ) -> tuple[CapturedChat, Workflow]:
        """Step 3: capture the chat from the next message (validating topics for workspace)."""
        self.io.echo("")
        self.io.echo("step 3: connect chat")
        name = f"@{bot.username}" if bot.username else "your bot"
        while True:
            if workflow.topics:
                self.io.echo("  1. create a Telegram group and turn on topics")
                self.io.echo(f"  2. add {name} as an admin with the 'manage topics' right")
                self.io.echo("  3. send any message in the group")
            else:
                self.io.echo(f"open a chat with {name} and send /start")
            self.io.echo("waiting for your message...")
            chat = self.capture_chat(token, self.api_url)
            if chat is None:
                raise SetupAborted()
            kind = describe_chat_kind(chat.chat_type, is_forum=chat.is_forum)
            self.io.echo(f"got chat_id {chat.chat_id} for {kind}")
            if not workflow.topics:
                return chat, workflow
            while True:
                ok, detail = _validate_topics(token, self.api_url, chat.chat_id, bot.id)
                if ok:
                    self.io.echo("topics: ok")
                    return chat, workflow
                self.io.echo(f"topics: {detail}")
                action = self.io.select(
                    "what now?",
                    [
                        Choice("retry", "retry validation"),
                        Choice("assistant", "switch to assistant mode"),
                    ],
                    default="retry",
                )
                if action == "assistant":
                    return chat, WORKFLOWS[0]

    def step_engine(self) -> str | None:
        """Step 4: the default engine among the installed ones (None = save without one)."""
        self.io.echo("")
        self.io.echo("step 4: default engine")
        engines = list(self.engines) if self.engines is not None else engine_infos(self._allowlist)
        for info in engines:
            if info.installed:
                self.io.echo(f"  {info.id:<10} ✓ installed")
            elif info.error:
                self.io.echo(f"  {info.id:<10} ✗ failed to load ({info.error})")
            else:
                hint = f" — install: {info.install_cmd}" if info.install_cmd else ""
                self.io.echo(f"  {info.id:<10} ✗ not found{hint}")
        installed = [info for info in engines if info.installed]
        if not installed:
            self.io.echo("no agent CLI is installed yet.")
            if not self.io.confirm("save config anyway?", default=False):
                raise SetupAborted()
            return None
        return self.io.select(
            "which engine should new threads use?",
            [Choice(info.id, info.id) for info in installed],
            default=installed[0].id,
        )

    def step_save(
        self, *, token: str, chat: CapturedChat, workflow: Workflow, engine: str | None
    ) -> bool:
        """Step 5: confirm and write the merged config."""
        self.io.echo("")
        self.io.echo("step 5: save config")
        if not self.io.confirm(f"save config to {display_path(self.config_path)}?", default=True):
            self.io.echo("config not saved.")
            return False
        data = _read_existing(self.config_path, self.io)
        merge_onboarding(
            data,
            bot_token=token,
            chat_id=chat.chat_id,
            workflow=workflow,
            default_engine=engine,
        )
        write_config(data, self.config_path)
        log.info("onboarding.saved", path=str(self.config_path), workflow=workflow.id)
        self.io.echo("✓ setup complete. starting takopi...")
        return True

    # -- whole run -----------------------------------------------------------------------------
    def run(self, *, force: bool, confirm_update: bool = True) -> WizardResult:
        """Run every step; :class:`SetupAborted` propagates when the user cancels.

        ``confirm_update=False`` skips "update existing config?" (the caller already asked).
        """
        if self.config_path.exists() and not force:
            self.io.echo(
                f"config already exists at {display_path(self.config_path)}. "
                "use --onboard to reconfigure."
            )
            return WizardResult(saved=False)
        if (
            self.config_path.exists()
            and force
            and confirm_update
            and not self.io.confirm(
                f"update existing config at {display_path(self.config_path)}?", default=False
            )
        ):
            raise SetupAborted()
        with suppress_logs("warning"):
            token, bot = self.step_token()
            workflow = self.step_workflow()
            chat, workflow = self.step_chat(token, bot, workflow)
            engine = self.step_engine()
            saved = self.step_save(token=token, chat=chat, workflow=workflow, engine=engine)
        return WizardResult(
            saved=saved, bot=bot, workflow=workflow, chat=chat, default_engine=engine
        )


def onboarding_paths() -> list[tuple[str, str, str, str, str]]:
    """Every way through the wizard: (workflow, engines found, save anyway, save config, outcome).

    Used by ``takopi onboarding-paths`` (a debugging aid, as in the reference).
    """
    paths: list[tuple[str, str, str, str, str]] = []
    for workflow in WORKFLOWS:
        for engines_found in ("yes", "no"):
            anyway_options = ("-",) if engines_found == "yes" else ("no", "yes")
            for anyway in anyway_options:
                if anyway == "no":
                    paths.append((workflow.id, engines_found, anyway, "-", "cancelled"))
                    continue
                for save in ("yes", "no"):
                    outcome = "saved, takopi starts" if save == "yes" else "not saved"
                    paths.append((workflow.id, engines_found, anyway, save, outcome))
    return paths


def _allowlist_of(raw: dict[str, Any] | None) -> list[str] | None:
    plugins = (raw or {}).get("plugins")
    enabled = plugins.get("enabled") if isinstance(plugins, dict) else None
    if isinstance(enabled, list):
        names = [n for n in enabled if isinstance(n, str) and n.strip()]
        return names or None
    return None


def run_onboarding(
    prompter: Prompter, *, config_path: Path, force: bool, confirm_update: bool = True
) -> bool:
    """Run the wizard; True when a config was saved. Cancelling prints ``setup cancelled.``."""
    try:
        wizard = Wizard(prompter, config_path=config_path)
        return wizard.run(force=force, confirm_update=confirm_update).saved
    except SetupAborted:
        prompter.echo("")
        prompter.echo("setup cancelled.")
        return False


__all__ = [
    "BOTFATHER_STEPS",
    "WORKFLOWS",
    "Wizard",
    "WizardResult",
    "Workflow",
    "merge_onboarding",
    "onboarding_paths",
    "run_onboarding",
]
