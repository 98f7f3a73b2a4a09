"""Validate ``takopi.toml`` in a short-lived child process.

The supervisor lives as long as the service and only reads a dozen settings; pydantic (the
validator of the whole config) would stay in its memory for good, about 5 MiB. So the
supervisor runs ``python -m takopi.supervisor.config_check PATH`` instead: the child reads,
migrates and validates the config exactly as :func:`takopi.settings.load_settings` does (same
environment, so ``TAKOPI__…`` overrides apply) and writes the plain dump back on stdout
(msgpack); the supervisor holds it as a :class:`~takopi.settings_view.SettingsView`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from takopi.config import ConfigError
from takopi.supervisor.short_lived import SHORT_LIVED

# msgpack, logging and the view load only when a check is collected: the check starts before
# the supervisor's own imports (takopi.supervisor.early), where only the stdlib is wanted.
if TYPE_CHECKING:
    import msgpack

    from takopi.settings_view import SettingsView

CHECK_TIMEOUT_S = 60.0
"""Bound on one validation (a cold interpreter importing pydantic takes well under 1 s)."""


class PendingCheck:
    """A config check started ahead of need (the supervisor starts it first thing, so it
    overlaps the supervisor's own start-up); :meth:`result` waits for it."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._signature = _signature(config_path)
        self._overrides = _overrides()
        argv = [sys.executable, *_safe_path_flag(), "-m", __name__, str(config_path)]
        self._error: ConfigError | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._proc = SHORT_LIVED.start(argv)
        except OSError as exc:
            self._error = ConfigError(f"config check could not start: {exc}")

    def stale(self) -> bool:
        """Whether the file changed (or appeared, or went) or the ``TAKOPI__…`` overrides
        changed (the CLI sets one for the demo fallback) since the check started."""
        return _signature(self.config_path) != self._signature or _overrides() != self._overrides

    def discard(self) -> None:
        """Stop a check nobody will collect (and reap it)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                SHORT_LIVED.finish(proc, timeout=CHECK_TIMEOUT_S)

    def result(self) -> SettingsView:
        """The validated settings (blocking: call it from a thread); ConfigError with the
        validator's message when the config is invalid or the check failed. Once only."""
        if self._proc is None:
            raise self._error or ConfigError("config check already collected")
        proc, self._proc = self._proc, None
        try:
            done = SHORT_LIVED.finish(proc, timeout=CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"config check timed out after {CHECK_TIMEOUT_S:g} s") from exc
        return _settings_from(done)


def _overrides() -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("TAKOPI__"))


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def load_settings_view(config_path: Path) -> SettingsView:
    """Validate ``config_path`` (defaults when the file does not exist) in a child process;
    ConfigError with the validator's message when the config is invalid or the check fails."""
    return PendingCheck(config_path).result()


def _settings_from(done: subprocess.CompletedProcess[bytes]) -> SettingsView:
    import msgpack

    from takopi.logging import get_logger
    from takopi.settings_view import SettingsView

    log = get_logger(__name__)
    try:
        answer = msgpack.unpackb(done.stdout, ext_hook=_decode_toml_value) if done.stdout else None
    except (ValueError, msgpack.UnpackException):
        answer = None
    if not isinstance(answer, dict) or done.returncode != 0:
        detail = _last_line(done.stderr) or f"exit status {done.returncode}"
        raise ConfigError(f"config check failed: {detail}")
    for line in done.stderr.decode("utf-8", "replace").splitlines():
        if line.strip():  # what the check logged (a migration rewriting the file…)
            log.info("config.check.output", line=line.strip()[:1000])
    if answer.get("error") is not None:
        raise ConfigError(str(answer["error"]))
    settings = answer.get("settings")
    if not isinstance(settings, dict):
        raise ConfigError("config check failed: no settings in its answer")
    return SettingsView(settings)


# TOML dates and times (legal in any table, e.g. an engine's) cross as msgpack extensions.
_TOML_TIME_TYPES: tuple[tuple[int, type[datetime.date] | type[datetime.time]], ...] = (
    (1, datetime.datetime),  # before date: a datetime is a date
    (2, datetime.date),
    (3, datetime.time),
)


def _encode_toml_value(value: Any) -> msgpack.ExtType:
    import msgpack

    for code, kind in _TOML_TIME_TYPES:
        if isinstance(value, kind):
            return msgpack.ExtType(code, value.isoformat().encode())
    raise TypeError(f"cannot pass {type(value).__name__} back from the config check")


def _decode_toml_value(code: int, data: bytes) -> Any:
    import msgpack

    for known, kind in _TOML_TIME_TYPES:
        if code == known:
            return kind.fromisoformat(data.decode())
    return msgpack.ExtType(code, data)


def _safe_path_flag() -> list[str]:
    # Never import from the supervisor's working directory by accident (-P: 3.11+).
    return ["-P"] if sys.version_info >= (3, 11) else []


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip()[:500] if lines else ""


def _check(path: Path) -> dict[str, Any]:
    from takopi.settings import load_settings, settings_dump, validate_settings

    try:
        if path.exists():
            settings, _ = load_settings(path)
        else:
            settings = validate_settings({}, config_path=path)
    except ConfigError as exc:
        return {"error": str(exc)}
    except OSError as exc:
        return {"error": f"Cannot read {path}: {exc}"}
    return {"settings": settings_dump(settings)}


def main(argv: list[str]) -> int:
    """Child side: validate ``argv[0]`` and write the answer on stdout."""
    if len(argv) != 1:
        print("usage: python -m takopi.supervisor.config_check PATH", file=sys.stderr)
        return 2
    from takopi.logging import setup_logging

    setup_logging(stream=sys.stderr)  # stdout carries the answer only
    answer = _check(Path(argv[0]))
    import msgpack

    sys.stdout.buffer.write(msgpack.packb(answer, default=_encode_toml_value))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


__all__ = ["CHECK_TIMEOUT_S", "PendingCheck", "load_settings_view"]
