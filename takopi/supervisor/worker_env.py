"""Which environment variables each kind of worker may see (least privilege, ARCHITECTURE §3).

Two layers:

1. **Start environment** (:func:`start_env`): what a worker process is *executed* with, and
   what the fork server (zygote) and the standby spare are executed with. Only operating-system,
   locale, proxy, CA, Python and ``TAKOPI_*`` variables (an allow-list), and never one whose
   name looks like a credential. The zygote therefore never holds any secret, so no forked
   worker can inherit one from its memory.
2. **Worker environment** (:class:`EnvPolicy`): the exact environment of one worker, sent by
   the supervisor in the handshake's WELCOME (over the private RPC socket) and installed by the
   worker before it imports its plugin. Agent CLIs inherit it.

The rules of layer 2:

- every worker: never ``NOTIFY_SOCKET`` / ``WATCHDOG_*`` (systemd talks to the supervisor);
- transport worker: everything else, except other transports' ``TAKOPI__TRANSPORTS__<id>__*``;
- command workers and third-party engines: everything except transport secrets: no
  ``TAKOPI__TRANSPORTS__*``, and no variable whose value contains a secret of a transport
  table (``bot_token``, any ``*token*``/``*secret*``/``*password*`` key), however the
  variable is named;
- built-in engines: the same, minus every *credential-named* variable (``*TOKEN*``,
  ``*SECRET*``, ``*PASSWORD*``, ``*CREDENTIAL*``, ``*_KEY`` …) that is not their CLI's:

  ========  ==================================================================================
  codex     ``OPENAI_*``, ``CODEX_*``, ``AZURE_OPENAI_*`` (codex talks to OpenAI; a custom
            ``model_providers.<x>.env_key`` is named in ``[supervisor.engine_env]``)
  claude    ``ANTHROPIC_*`` and ``CLAUDE_*`` — but ``ANTHROPIC_API_KEY`` only with
            ``[claude] use_api_billing = true``; ``AWS_*`` with ``CLAUDE_CODE_USE_BEDROCK``,
            ``GOOGLE_*``/``CLOUD_ML_*``/``VERTEX_*`` with ``CLAUDE_CODE_USE_VERTEX``
  opencode  every provider credential (multi-provider CLIs read dozens of ``<PROVIDER>_API_KEY``
  pi        variables; what they may not see is the transports' secrets)
  ========  ==================================================================================

  ``[supervisor.engine_env] <engine> = ["NAME", ...]`` passes more credential-named variables
  to one engine.

This module imports only the standard library (:mod:`takopi.supervisor.early` uses it before
the supervisor has imported anything else).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

SUPERVISOR_ONLY = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
"""Variables only the supervisor may see (systemd's notify socket and watchdog)."""
TRANSPORT_OVERRIDE_PREFIX = "TAKOPI__TRANSPORTS__"
"""Config overrides of transport tables (they may carry a bot token)."""

_START_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "COLORTERM",
        "NO_COLOR",
        "FORCE_COLOR",
        "TMPDIR",
        "TEMP",
        "TMP",
        "PWD",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    }
)
_START_PREFIXES = ("LC_", "XDG_", "PYTHON", "TAKOPI_", "COVERAGE_")
_CREDENTIAL_WORDS = frozenset(
    {
        "TOKEN",
        "TOKENS",
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "CREDENTIAL",
        "CREDENTIALS",
        "APIKEY",
    }
)

ENGINE_CREDENTIALS: dict[str, tuple[str, ...] | None] = {
    "codex": ("OPENAI_", "CODEX_", "AZURE_OPENAI_"),
    "claude": ("ANTHROPIC_", "CLAUDE_"),
    "opencode": None,
    "pi": None,
}
"""Built-in engines: name prefixes of the credentials their CLI reads (None: any provider's)."""
_CLAUDE_CLOUD = {
    "CLAUDE_CODE_USE_BEDROCK": ("AWS_",),
    "CLAUDE_CODE_USE_VERTEX": ("GOOGLE_", "CLOUD_ML_", "VERTEX_"),
}
_MIN_SECRET_LEN = 8
"""Shorter transport values (``chat_id``-like numbers, flags) are not treated as secrets."""


def is_credential_name(name: str) -> bool:
    """Whether a variable's name says it holds a credential (``OPENAI_API_KEY``,
    ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD`` …)."""
    upper = name.upper()
    if upper == "KEY" or upper.endswith(("_KEY", "APIKEY")):
        return True
    return any(word in _CREDENTIAL_WORDS for word in upper.split("_"))


def _is_start_name(name: str) -> bool:
    upper = name.upper()
    if upper in _START_NAMES:
        return True
    if upper.startswith("TAKOPI__"):
        return False  # config overrides: they may hold any secret
    return upper.startswith(_START_PREFIXES)


def start_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment worker processes, the zygote and the standby are executed with."""
    return {
        k: v
        for k, v in environ.items()
        if k not in SUPERVISOR_ONLY and _is_start_name(k) and not is_credential_name(k)
    }


def worker_command(python: str | None = None) -> list[str]:
    """``<python> -P -m takopi.worker``: how every fresh worker, probe, standby and fork server
    is executed (``python`` defaults to this interpreter).

    ``-m`` alone would put the current directory first on ``sys.path``, so a directory holding
    ``msgpack/`` or ``takopi/`` would shadow the real modules in the worker. ``-P`` leaves it
    out for this process only; ``PYTHONSAFEPATH`` would do the same but would be inherited by
    the agent CLIs and by the user's own ``python script.py``. Every interpreter a worker runs
    on has takopi installed, so it is 3.11 or newer (``-P`` exists from 3.11 on).
    """
    return [python or sys.executable, "-P", "-m", "takopi.worker"]


_HARMLESS_NAMES = frozenset(
    {
        "_",
        "SHLVL",
        "OLDPWD",
        "HOSTNAME",
        "INVOCATION_ID",
        "JOURNAL_STREAM",
        "MANAGERPID",
        "SYSTEMD_EXEC_PID",
    }
)
"""Shell and systemd bookkeeping: never a secret, though start_env does not pass them on."""


def forkable_environment(environ: Mapping[str, str]) -> bool:
    """Whether a process with this environment may fork the zygote (which then keeps a copy of
    the environment block): only when no variable could hold a secret — each is one
    :func:`start_env` keeps, systemd's notify/watchdog, shell/systemd bookkeeping, or a
    variable not named like a credential whose value is too short to be a transport secret
    or is absolute paths. Anything else (an innocently named variable may mirror a bot
    token) means a spawned zygote."""
    if any(k.upper().startswith(TRANSPORT_OVERRIDE_PREFIX) for k in environ):
        return False
    return all(
        k in SUPERVISOR_ONLY
        or k.upper() in _HARMLESS_NAMES
        or (_is_start_name(k) and not is_credential_name(k))
        or (not is_credential_name(k) and _cannot_be_a_secret(v))
        for k, v in environ.items()
    )


def _cannot_be_a_secret(value: str) -> bool:
    """Shorter than any transport secret (see :func:`secret_values`), or absolute paths."""
    return len(value) < _MIN_SECRET_LEN or all(p.startswith("/") for p in value.split(":"))


def transport_override_values(environ: Mapping[str, str]) -> list[str]:
    """Values of ``TAKOPI__TRANSPORTS__*`` variables (transport secrets given by env)."""
    return [v for k, v in environ.items() if k.upper().startswith(TRANSPORT_OVERRIDE_PREFIX)]


_TRANSPORT_SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE"})


def _is_transport_secret_key(key: str) -> bool:
    return any(word in _TRANSPORT_SECRET_WORDS for word in key.upper().split("_"))


def secret_values(tables: Iterable[object]) -> set[str]:
    """String values under token/secret/password keys anywhere in ``tables`` (transport
    config: ``bot_token`` …). Provider API keys there (``voice_transcription_api_key``) are
    not transport secrets: an engine may legitimately hold the same key."""
    found: set[str] = set()
    stack = list(tables)
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if isinstance(value, str):
                    if _is_transport_secret_key(str(key)) and len(value) >= _MIN_SECRET_LEN:
                        found.add(value)
                else:
                    stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


class EnvPolicy:
    """Computes each worker's environment from the supervisor's.

    ``transport_secrets``: values that only transport workers may see (bot tokens from the
    transport tables); ``engine_env``: ``[supervisor.engine_env]`` extra names per engine;
    ``api_billing``: engines whose ``use_api_billing`` is on (claude).
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        transport_secrets: Iterable[str] = (),
        engine_env: Mapping[str, Iterable[str]] | None = None,
        api_billing: Iterable[str] = (),
    ) -> None:
        self._environ = {k: v for k, v in environ.items() if k not in SUPERVISOR_ONLY}
        secrets = set(transport_secrets) | set(transport_override_values(environ))
        self._secrets = [s for s in secrets if len(s) >= _MIN_SECRET_LEN]
        self._engine_env = {k: set(v) for k, v in (engine_env or {}).items()}
        self._api_billing = set(api_billing)

    def _without_transport_secrets(self) -> dict[str, str]:
        secrets = self._secrets
        return {
            k: v
            for k, v in self._environ.items()
            if not k.upper().startswith(TRANSPORT_OVERRIDE_PREFIX)
            and not any(secret in v for secret in secrets)
        }

    def transport(self, transport_id: str) -> dict[str, str]:
        """A transport worker's environment: its own overrides, not other transports'."""
        own = f"{TRANSPORT_OVERRIDE_PREFIX}{transport_id.upper()}__"
        return {
            k: v
            for k, v in self._environ.items()
            if not k.upper().startswith(TRANSPORT_OVERRIDE_PREFIX) or k.upper().startswith(own)
        }

    def command(self, command_id: str) -> dict[str, str]:
        """A command worker's environment: no transport secrets."""
        return self._without_transport_secrets()

    def engine(self, engine_id: str) -> dict[str, str]:
        """An engine worker's environment (see the module docstring for the rules)."""
        env = self._without_transport_secrets()
        if engine_id not in ENGINE_CREDENTIALS:
            return env  # a third-party engine: we cannot know which provider it talks to
        prefixes = ENGINE_CREDENTIALS[engine_id]
        if prefixes is None:
            return env
        allowed_prefixes = list(prefixes)
        if engine_id == "claude":
            for flag, cloud in _CLAUDE_CLOUD.items():
                if env.get(flag, "").strip() not in ("", "0", "false"):
                    allowed_prefixes.extend(cloud)
        extra = self._engine_env.get(engine_id, set())
        denied = set()
        if engine_id == "claude" and engine_id not in self._api_billing:
            denied.add("ANTHROPIC_API_KEY")
        return {
            k: v
            for k, v in env.items()
            if k not in denied
            and (
                k in extra
                or not is_credential_name(k)
                or k.upper().startswith(tuple(allowed_prefixes))
            )
        }

    def for_worker(self, kind: str, plugin_id: str) -> dict[str, str]:
        """The environment of a ``kind`` worker hosting ``plugin_id``."""
        if kind == "transport":
            return self.transport(plugin_id)
        if kind == "engine":
            return self.engine(plugin_id)
        return self.command(plugin_id)


__all__ = [
    "ENGINE_CREDENTIALS",
    "SUPERVISOR_ONLY",
    "TRANSPORT_OVERRIDE_PREFIX",
    "EnvPolicy",
    "forkable_environment",
    "is_credential_name",
    "secret_values",
    "start_env",
    "transport_override_values",
    "worker_command",
]
