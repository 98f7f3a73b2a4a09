"""The ``console`` transport backend (entry point ``takopi.console.backend:BACKEND``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from takopi.backends import EngineBackend
from takopi.backends_helpers import install_issue
from takopi.console.loop import run_console
from takopi.transports import SetupResult


class ConsoleBackend:
    """Chat with takopi in the terminal that started it; needs no token and no config."""

    id = "console"
    description = "chat in this terminal (no Telegram needed)"

    def check_setup(
        self, engine_backend: EngineBackend, *, transport_override: str | None = None
    ) -> SetupResult:
        cli = engine_backend.cli_cmd or engine_backend.id
        issues = []
        if shutil.which(cli) is None and engine_backend.install_cmd:
            issues.append(install_issue(cli, engine_backend.install_cmd))
        return SetupResult(issues=tuple(issues), config_path=None)

    async def interactive_setup(self, *, force: bool) -> bool:
        return False

    def lock_token(self, *, transport_config: dict[str, Any], _config_path: Path) -> str | None:
        # Several consoles may share a config: there is no bot to fight over.
        return None

    def build_and_run(
        self,
        *,
        transport_config: dict[str, Any],
        config_path: Path,
        runtime: Any,
        final_notify: bool,
        default_engine_override: str | None,
    ) -> None:
        run_console(runtime, final_notify=final_notify)


BACKEND = ConsoleBackend()
