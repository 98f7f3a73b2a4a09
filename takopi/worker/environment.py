"""A worker's environment, as the supervisor chose it (:mod:`takopi.supervisor.worker_env`)."""

from __future__ import annotations

import os


def install_environment(env: object) -> None:
    """Replace this process's environment with the one the supervisor sent in WELCOME
    (:mod:`takopi.supervisor.worker_env`): what this worker's plugin and its agent CLIs may
    see. Done before the plugin is imported; nothing is changed if none was sent."""
    if not isinstance(env, dict):
        return
    wanted = {str(k): str(v) for k, v in env.items()}
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    os.environ.update(wanted)


__all__ = ["install_environment"]
