"""RPC error types and the mapping of well-known exceptions across the wire.

Every error that crosses the wire is a small dict: ``code``, ``message``, ``retryable``,
``traceback`` (remote traceback text, secrets redacted) and ``type`` (the remote exception's
qualified class name). On the caller it becomes a :class:`RemoteError`, or the real exception
class when the code was registered with :func:`register_error` (so that e.g. a plugin catching
``ConfigError`` around ``runtime.resolve_run_cwd()`` keeps working across processes).
"""

from __future__ import annotations

import importlib
import threading
import traceback as _traceback
from typing import Any

from takopi.logging import redact_text

# Codes used by the protocol itself.
UNKNOWN_METHOD = "unknown_method"
BAD_REQUEST = "bad_request"
HANDLER_ERROR = "handler_error"
UNKNOWN_REF = "unknown_ref"
PEER_GONE = "peer_gone"
PROTOCOL_ERROR = "protocol_error"
REFUSED = "refused"
TIMEOUT = "timeout"
ENCODE_ERROR = "encode_error"
TOO_LARGE = "too_large"


class RpcError(Exception):
    """Base of every RPC failure: ``code``, ``message``, ``retryable``, ``remote_traceback``."""

    default_code = "rpc_error"
    default_retryable = False

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        retryable: bool | None = None,
        remote_traceback: str | None = None,
        remote_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.remote_traceback = remote_traceback
        self.remote_type = remote_type

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.message else f"[{self.code}]"


class RemoteError(RpcError):
    """The remote handler failed (raised, unknown method, bad arguments, …)."""

    default_code = HANDLER_ERROR


class PeerGone(RpcError):
    """The peer disconnected or died; pending calls and streams fail with this."""

    default_code = PEER_GONE
    default_retryable = True


class ProtocolError(RpcError):
    """A frame violated the protocol (garbage, wrong version, bad sequence number, …)."""

    default_code = PROTOCOL_ERROR


class HandshakeRefused(RpcError):
    """The supervisor refused this worker's HELLO; ``message`` says why."""

    default_code = REFUSED


class CallTimeout(RpcError, TimeoutError):
    """A call or ping got no answer within its timeout."""

    default_code = TIMEOUT
    default_retryable = True


# --- exception registry -------------------------------------------------------------------

_lock = threading.Lock()
_by_code: dict[str, type[BaseException]] = {}
_by_class: dict[type[BaseException], str] = {}
# Exceptions defined in modules that may not exist yet / are heavy: imported on first use.
_lazy: dict[str, tuple[str, str]] = {
    "config_error": ("takopi.config", "ConfigError"),
    "directive_error": ("takopi.directives", "DirectiveError"),
    "runner_unavailable": ("takopi.router", "RunnerUnavailableError"),
}
_lazy_loaded = False


def register_error(cls: type[BaseException], *, code: str) -> None:
    """Re-raise ``cls`` (and subclasses) as ``cls(message)`` on the calling side.

    The code travels on the wire; the caller's registry decides which class it maps to.
    """
    with _lock:
        _by_code[code] = cls
        _by_class[cls] = code


def _load_lazy() -> None:
    global _lazy_loaded
    if _lazy_loaded:
        return
    _lazy_loaded = True
    for code, (module, attr) in _lazy.items():
        if code in _by_code:
            continue
        try:
            cls = getattr(importlib.import_module(module), attr)
        except Exception:
            _lazy_loaded = False  # retry later, the module may appear (tests, hot paths)
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException):
            register_error(cls, code=code)


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """Describe ``exc`` (raised by a handler) as the wire error dict."""
    if isinstance(exc, RpcError):
        code, retryable = exc.code, exc.retryable
    else:
        _load_lazy()
        code, retryable = HANDLER_ERROR, bool(getattr(exc, "retryable", False))
        for klass in type(exc).__mro__:
            registered = _by_class.get(klass)
            if registered is not None:
                code = registered
                break
    tb = getattr(exc, "remote_traceback", None) or "".join(
        _traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    message = exc.message if isinstance(exc, RpcError) else str(exc)
    return {
        "code": code,
        "message": redact_text(message),
        "retryable": retryable,
        "traceback": redact_text(tb),
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
    }


def error_from_wire(data: Any) -> BaseException:
    """Build the exception to raise on the caller from a wire error dict."""
    if not isinstance(data, dict):
        return ProtocolError(f"malformed error payload: {data!r:.200}")
    code = str(data.get("code") or HANDLER_ERROR)
    message = str(data.get("message") or "")
    remote = RemoteError(
        message,
        code=code,
        retryable=bool(data.get("retryable", False)),
        remote_traceback=data.get("traceback") if isinstance(data.get("traceback"), str) else None,
        remote_type=data.get("type") if isinstance(data.get("type"), str) else None,
    )
    _load_lazy()
    cls = _by_code.get(code)
    if cls is not None:
        try:
            exc = cls(message)
        except Exception:
            return remote
        exc.__cause__ = remote
        return exc
    return remote


__all__ = [
    "BAD_REQUEST",
    "ENCODE_ERROR",
    "HANDLER_ERROR",
    "PEER_GONE",
    "PROTOCOL_ERROR",
    "REFUSED",
    "TIMEOUT",
    "TOO_LARGE",
    "UNKNOWN_METHOD",
    "UNKNOWN_REF",
    "CallTimeout",
    "HandshakeRefused",
    "PeerGone",
    "ProtocolError",
    "RemoteError",
    "RpcError",
    "error_from_wire",
    "error_to_wire",
    "register_error",
]
