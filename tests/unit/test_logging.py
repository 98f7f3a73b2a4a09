"""takopi.logging: structlog-style calls, redaction, suppression, late configuration."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from takopi.logging import (
    bind_run_context,
    clear_context,
    get_logger,
    redact,
    register_secret,
    setup_logging,
    suppress_logs,
)

module_level_logger = get_logger("tests.module_level")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    setup_logging(stream=buf, fmt="json", level="debug")
    yield buf
    clear_context()
    setup_logging()


def _events(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_keyword_fields_and_logger_name(json_log: io.StringIO) -> None:
    get_logger("plugin.x").info("thing.happened", count=3, who="me")
    (event,) = _events(json_log)
    assert event["event"] == "thing.happened"
    assert event["count"] == 3
    assert event["logger"] == "plugin.x"
    assert event["level"] == "info"


def test_module_level_logger_follows_later_setup(json_log: io.StringIO) -> None:
    """Loggers created at import time must honour setup_logging() called afterwards."""
    module_level_logger.warning("late.config")
    assert [e["event"] for e in _events(json_log)] == ["late.config"]


def test_bot_tokens_are_redacted_everywhere(json_log: io.StringIO) -> None:
    token = "123456789:AAHfakeTokenValue_abcdefghij"
    get_logger("t").error(
        "request.failed",
        url=f"https://api.telegram.org/bot{token}/getMe",
        nested={"list": [token], "tuple": (token,)},
    )
    text = json_log.getvalue()
    assert token not in text
    assert "bot[REDACTED]" in text


def test_registered_secret_is_redacted(json_log: io.StringIO) -> None:
    register_secret("sk-test-secret-value")
    get_logger("t").info("config", api_key="sk-test-secret-value")
    assert "sk-test-secret-value" not in json_log.getvalue()


def test_redact_is_recursive_and_keeps_other_values() -> None:
    data = {"a": ["bot1:abcdefghijkl"], "n": 5, "b": b"42:abcdefghijklmnop"}
    out = redact(data)
    assert out["a"] == ["bot[REDACTED]"]
    assert out["n"] == 5
    assert out["b"] == b"[REDACTED_TOKEN]"


def test_suppress_logs_drops_info_and_below(json_log: io.StringIO) -> None:
    log = get_logger("t")
    with suppress_logs():
        log.debug("hidden.debug")
        log.info("hidden.info")
        log.warning("shown.warning")
    log.info("shown.after")
    assert [e["event"] for e in _events(json_log)] == ["shown.warning", "shown.after"]


def test_run_context_is_bound_and_cleared(json_log: io.StringIO) -> None:
    log = get_logger("t")
    bind_run_context(chat_id=42, engine="codex")
    log.info("in.run")
    clear_context()
    log.info("after.run")
    first, second = _events(json_log)
    assert first["chat_id"] == 42 and first["engine"] == "codex"
    assert "chat_id" not in second


def test_bind_returns_logger_with_fields(json_log: io.StringIO) -> None:
    get_logger("t").bind(run="r1").info("bound")
    (event,) = _events(json_log)
    assert event["run"] == "r1"


def test_level_filter(json_log: io.StringIO) -> None:
    setup_logging(stream=json_log, fmt="json", level="error")
    log = get_logger("t")
    log.warning("dropped")
    log.error("kept")
    assert [e["event"] for e in _events(json_log)] == ["kept"]
