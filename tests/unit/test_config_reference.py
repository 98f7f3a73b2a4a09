"""A reference takopi.toml loads unchanged (core-config)."""

from __future__ import annotations

import shutil
from pathlib import Path

from takopi.config import read_config
from takopi.settings import load_settings

DATA = Path(__file__).parent / "data" / "config_reference_takopi.toml"


def test_reference_config_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    shutil.copyfile(DATA, path)
    before = path.read_bytes()
    settings, resolved = load_settings(path)
    assert resolved == path
    assert path.read_bytes() == before, "a current-format config must not be rewritten"

    assert settings.watch_config is True
    assert (settings.default_engine, settings.default_project, settings.transport) == (
        "claude",
        "takopi",
        "telegram",
    )
    tg = settings.transports.telegram
    assert tg is not None
    assert tg.chat_id == -1001234567890
    assert tg.allowed_user_ids == [111111, 222222]
    assert (tg.message_overflow, tg.session_mode, tg.show_resume_line) == ("split", "chat", False)
    assert (tg.forward_coalesce_s, tg.media_group_debounce_s) == (0.5, 1.5)
    assert tg.voice_transcription and tg.voice_max_bytes == 5242880
    assert tg.voice_transcription_base_url == "http://127.0.0.1:8000/v1"
    assert (tg.topics.enabled, tg.topics.scope) == (True, "projects")
    assert tg.files.auto_put_mode == "prompt" and tg.files.uploads_dir == "incoming/telegram"
    assert tg.files.deny_globs == [".git/**", ".env", "*.pem", "secrets/**"]

    raw = read_config(path)
    for engine in ("codex", "claude", "opencode", "pi"):
        assert settings.engine_config(engine, config_path=path) == raw[engine]
    assert settings.plugins_allowlist() == ["takopi-scripts", "takopi_cron"]
    assert settings.plugin_config("run") == raw["plugins"]["run"]
    assert settings.plugin_config("cron")["jobs"][0]["name"] == "daily"

    projects = settings.to_projects_config(
        config_path=path, engine_ids=["claude", "codex", "opencode", "pi"]
    )
    assert projects.aliases() == ["takopi", "happy-gadgets", "Docs"]
    assert projects.default_project == "takopi"
    assert projects.resolve("docs").path == tmp_path / "docs-site"
    assert projects.resolve("takopi").worktree_base == "main"
    assert projects.project_for_chat(-1009876543210) == "takopi"
    gadgets = projects.resolve("happy-gadgets")
    assert gadgets.worktrees_root == Path.home() / ".cache/takopi-worktrees/happy-gadgets"
