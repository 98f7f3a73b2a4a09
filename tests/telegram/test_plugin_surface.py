"""The Telegram-internal names third-party plugins import, used the way they use them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from anyio.from_thread import start_blocking_portal

from tests.telegram.conftest import CHAT, make_runtime

pytestmark = pytest.mark.timeout(60)


def test_plugin_surface_names_exist():
    from takopi.telegram import bridge, client, files, loop, state_store, types

    for name in (
        "TelegramBridgeConfig",
        "TelegramCallbackQuery",
        "TelegramFilesConfig",
        "TelegramIncomingMessage",
        "TelegramIncomingUpdate",
        "TelegramPresenter",
        "TelegramTopicsConfig",
        "TelegramTransport",
        "TelegramVoiceTranscriptionConfig",
        "poll_updates",
        "run_main_loop",
    ):
        assert getattr(bridge, name) is not None, name
    for name in ("BotClient", "TelegramClient", "is_group_chat_id"):
        assert getattr(client, name) is not None
    for name in (
        "ZipTooLargeError",
        "default_upload_name",
        "deny_reason",
        "file_usage",
        "format_bytes",
        "normalize_relative_path",
        "parse_file_command",
        "parse_file_prompt",
        "resolve_path_within_root",
        "write_bytes_atomic",
        "zip_directory",
    ):
        assert callable(getattr(files, name)), name
    assert loop.poll_updates is bridge.poll_updates
    assert state_store.JsonStateStore[dict] is not None
    assert types.TelegramIncomingUpdate is not None


def test_a_wrapping_transport_plugin_with_its_own_poller(server, fake_codex, tmp_path):
    """What tg-group-auth does: its own client (not entered), config and a filtering poller
    around ``poll_updates(cfg)``, passed to ``run_main_loop`` with the reference keywords."""
    from takopi.runner_bridge import ExecBridgeConfig
    from takopi.telegram.bridge import (
        TelegramBridgeConfig,
        TelegramFilesConfig,
        TelegramPresenter,
        TelegramTopicsConfig,
        TelegramTransport,
        TelegramVoiceTranscriptionConfig,
        poll_updates,
        run_main_loop,
    )
    from takopi.telegram.client import TelegramClient

    bot = TelegramClient(server.token, api_url=server.base_url)
    cfg = TelegramBridgeConfig(
        bot=bot,
        runtime=make_runtime(tmp_path / "takopi.toml"),
        chat_id=CHAT,
        startup_msg="plugin transport up",
        exec_cfg=ExecBridgeConfig(
            transport=TelegramTransport(bot), presenter=TelegramPresenter(), final_notify=True
        ),
        voice_transcription=TelegramVoiceTranscriptionConfig(enabled=False),
        topics=TelegramTopicsConfig(enabled=False, scope="auto"),
        files=TelegramFilesConfig(enabled=False, allowed_user_ids=frozenset(), deny_globs=()),
        chat_ids=None,
        forward_coalesce_s=0,
        poll_timeout_s=1,
    )

    async def only_text_with_please(c: TelegramBridgeConfig) -> AsyncIterator:
        async for update in poll_updates(c):
            if getattr(update, "text", "").startswith("please"):
                yield update

    async def main() -> None:
        await run_main_loop(
            cfg,
            poller=only_text_with_please,
            watch_config=False,
            default_engine_override=None,
            transport_id="telegram_group_auth",
            transport_config={},
        )

    with start_blocking_portal(backend="asyncio") as portal:
        future = portal.start_task_soon(main)
        try:
            server.wait_for(
                lambda: any(m.text == "plugin transport up" for m in server.bot_messages(CHAT))
            )
            server.send_user_message(CHAT, "filtered out")
            user = server.send_user_message(CHAT, "please run")
            server.wait_for(
                lambda: any(
                    m.reply_to_message_id == user["message_id"] and m.text.startswith("done")
                    for m in server.bot_messages(CHAT)
                ),
                timeout=20,
            )
        finally:
            future.cancel()
    assert [c["prompt"] for c in fake_codex.calls()] == ["please run"]
