"""A client for OpenAI-compatible speech-to-text: ``POST <base_url>/audio/transcriptions``.

``base_url`` is ``voice_transcription_base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's;
the API key is ``voice_transcription_api_key``, else ``$OPENAI_API_KEY``. The key only ever
travels in the ``Authorization`` header and is registered with the log redactor; error
messages carry the server's explanation, never the request.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from takopi.logging import get_logger, redact_text, register_secret

from .tls import https_verify

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini-transcribe"
TIMEOUT_S = 120.0

log = get_logger(__name__)


class TranscriptionError(Exception):
    """Transcription failed; the message is meant for the user as is."""


def _server_message(response: httpx.Response) -> str | None:
    try:
        payload: Any = response.json()
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"]).strip() or None
    if isinstance(error, str) and error.strip():
        return error.strip()
    return None


class Transcriber:
    """Transcribes audio with an OpenAI-compatible server (see module docstring)."""

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = TIMEOUT_S,
        environ: dict[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.model = model
        self.base_url = (base_url or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._api_key = api_key or env.get("OPENAI_API_KEY") or None
        self.timeout_s = timeout_s
        register_secret(self._api_key)

    @property
    def has_api_key(self) -> bool:
        return self._api_key is not None

    async def transcribe(
        self, audio: bytes, *, filename: str = "voice.ogg", content_type: str = "audio/ogg"
    ) -> str:
        """The text of ``audio``; raises :class:`TranscriptionError`."""
        if self._api_key is None:
            raise TranscriptionError(
                "voice transcription needs an API key: set `voice_transcription_api_key` "
                "or OPENAI_API_KEY."
            )
        url = f"{self.base_url}/audio/transcriptions"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, verify=https_verify()) as client:
                response = await client.post(
                    url,
                    headers={"Authorization": f"Bearer {self._api_key}"},
                    data={"model": self.model},
                    files={"file": (filename, audio, content_type)},
                )
        except httpx.TimeoutException:
            log.warning("telegram.voice.transcription_failed", reason="timeout")
            raise TranscriptionError(
                "voice transcription failed: the transcription server timed out."
            ) from None
        except httpx.HTTPError as exc:
            log.warning(
                "telegram.voice.transcription_failed",
                reason=redact_text(f"{type(exc).__name__}: {exc}"),
            )
            raise TranscriptionError(
                "voice transcription failed: could not reach the transcription server."
            ) from None
        if response.status_code != 200:
            detail = _server_message(response) or f"HTTP {response.status_code}"
            detail = redact_text(detail)
            log.warning(
                "telegram.voice.transcription_failed",
                status=response.status_code,
                reason=detail,
            )
            raise TranscriptionError(
                f"voice transcription failed ({response.status_code}): {detail}"
            )
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            log.warning("telegram.voice.transcription_failed", reason="no text in the answer")
            raise TranscriptionError("voice transcription failed: the server's answer has no text.")
        return text


__all__ = ["DEFAULT_BASE_URL", "Transcriber", "TranscriptionError"]
