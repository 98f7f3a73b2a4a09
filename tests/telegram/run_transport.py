"""Run the telegram backend's ``build_and_run`` in this process (used by process tests).

Usage: ``python -m tests.telegram.run_transport <config.toml>`` — the config's
``[transports.telegram]`` is used as is; the runtime has one engine, ``codex`` (whatever
``codex`` is on PATH). Logging follows the ``TAKOPI_LOG_*`` environment variables.
"""

from __future__ import annotations

import sys
from pathlib import Path

from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.codex import build_runner
from takopi.settings import load_settings
from takopi.telegram.backend import BACKEND
from takopi.transport_runtime import TransportRuntime


def main() -> None:
    config_path = Path(sys.argv[1])
    settings, config_path = load_settings(config_path)
    router = AutoRouter(
        [RunnerEntry(engine="codex", runner=build_runner({}, config_path))], default_engine="codex"
    )
    runtime = TransportRuntime(router=router, config_path=config_path)
    transport_config = settings.transport_config("telegram", config_path=config_path)
    BACKEND.build_and_run(
        transport_config=transport_config,
        config_path=config_path,
        runtime=runtime,
        final_notify=True,
        default_engine_override=None,
    )


if __name__ == "__main__":
    main()
