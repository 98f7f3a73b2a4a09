"""`JsonStateStore[T]`: a JSON state file next to the config, cached in memory.

Files are ``{"version": 1, ...}``, written atomically (``<file>.tmp`` + ``os.replace``,
indent 2, sorted keys) and re-read when their ``(mtime, size)`` changes, so external edits
are picked up. A corrupt file (bad JSON, wrong version, wrong shape) is logged, kept aside as
``<file>.corrupt`` and replaced by an empty state — takopi never stops over a state file.

Subclasses (third-party transports do this too) use the protected API::

    async with self._lock:
        self._reload_locked_if_needed()
        ... read or mutate self._state ...
        self._save_locked()

``state_type`` may be a msgspec ``Struct``, a pydantic model, a class with
``from_dict``/``to_dict``, ``dict``, or a :class:`CheckedShape` (a plain dict whose shape is
checked when it is loaded: a file of another shape counts as corrupt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio

from takopi.logging import get_logger
from takopi.utils.json_state import file_signature, read_json_state, write_json_state

T = TypeVar("T")

_log = get_logger(__name__)


class CheckedShape:
    """A ``state_type`` for dict states: on load the data must fit ``shape`` (a
    ``TypedDict``, checked strictly with pydantic) or the file is treated as corrupt; the
    dict itself is kept as it is (unknown keys included)."""

    def __init__(self, shape: Any) -> None:
        self._shape = shape
        self._adapter: Any = None  # built on first use: most starts load no state file

    def from_dict(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` unchanged; raises ``pydantic.ValidationError`` when it has another shape."""
        if self._adapter is None:
            from pydantic import TypeAdapter

            self._adapter = TypeAdapter(self._shape)
        self._adapter.validate_python(data, strict=True)
        return data


def _decode(state_type: Any, data: dict[str, Any]) -> Any:
    if state_type is dict or state_type is None:
        return data
    if hasattr(state_type, "model_validate"):  # pydantic
        return state_type.model_validate(data)
    if hasattr(state_type, "from_dict"):
        return state_type.from_dict(data)
    module = getattr(state_type, "__module__", "") or ""
    if module.startswith("msgspec") or any(
        getattr(base, "__module__", "").startswith("msgspec") for base in state_type.__mro__
    ):
        import msgspec

        return msgspec.convert(data, type=state_type)
    if dataclasses.is_dataclass(state_type):
        return state_type(**data)  # type: ignore[operator]
    return state_type(data)


def _encode(state: Any) -> dict[str, Any]:
    if isinstance(state, dict):
        return state
    if hasattr(state, "model_dump"):
        return state.model_dump(mode="json")  # type: ignore[no-any-return]
    if hasattr(state, "to_dict"):
        return state.to_dict()  # type: ignore[no-any-return]
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.asdict(state)
    import msgspec

    encoded = msgspec.to_builtins(state)
    if not isinstance(encoded, dict):
        raise TypeError(f"state {type(state).__name__} does not encode to an object")
    return encoded


class JsonStateStore(Generic[T]):
    """A versioned JSON state file with an in-memory copy (see module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        version: int,
        state_type: Any,
        state_factory: Callable[[], T],
        log_prefix: str = "state",
        logger: Any = None,
    ) -> None:
        self._path = Path(path)
        self._version = version
        self._state_type = state_type
        self._state_factory = state_factory
        self._log_prefix = log_prefix
        self._logger = logger if logger is not None else _log
        self._lock = anyio.Lock()
        self._loaded_signature: tuple[int, int] | None = None
        self._loaded = False
        self._state: T = state_factory()

    @property
    def path(self) -> Path:
        return self._path

    def _reload_locked_if_needed(self) -> None:
        """Re-read the file when it changed on disk since we last loaded or saved it."""
        signature = file_signature(self._path)
        if self._loaded and signature == self._loaded_signature:
            return
        self._loaded = True
        self._loaded_signature = signature
        if signature is None:
            self._state = self._state_factory()
            return
        data = read_json_state(self._path, version=self._version)
        if data is None:
            self._state = self._state_factory()
            self._loaded_signature = file_signature(self._path)
            return
        try:
            self._state = _decode(self._state_type, data)
        except Exception as exc:
            self._logger.warning(
                f"{self._log_prefix}.load_failed", path=str(self._path), error=str(exc)
            )
            backup = self._path.with_name(self._path.name + ".corrupt")
            try:
                self._path.replace(backup)
            except OSError:
                pass
            self._state = self._state_factory()
            self._loaded_signature = file_signature(self._path)

    def _save_locked(self) -> None:
        """Write the in-memory state atomically (errors are logged, never raised)."""
        try:
            data = _encode(self._state)
            write_json_state(self._path, data, version=self._version)
        except Exception as exc:
            self._logger.warning(
                f"{self._log_prefix}.save_failed", path=str(self._path), error=str(exc)
            )
            return
        self._loaded_signature = file_signature(self._path)
        self._loaded = True


__all__ = ["CheckedShape", "JsonStateStore"]
