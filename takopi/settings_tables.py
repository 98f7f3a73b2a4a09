"""The pydantic models of ``[transports.telegram]`` and the field types shared by takopi's
config tables.

Kept apart from :mod:`takopi.settings` so that the telegram transport worker can validate its
own table without importing pydantic-settings and the whole-config loader (about 3 MiB per
process); :mod:`takopi.settings` re-exports every name defined here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from takopi.settings_view import FILES_MAX_DOWNLOAD_BYTES, FILES_MAX_UPLOAD_BYTES

_INT_STRING_RE = re.compile(r"^[+-]?\d+$")

DEFAULT_DENY_GLOBS: tuple[str, ...] = (".git/**", ".env", ".envrc", "*.pem", ".ssh/**")


def _coerce_int_string(value: Any) -> Any:
    # Chat ids pasted as strings ("-100123") are accepted; bools and floats are not.
    if isinstance(value, str) and _INT_STRING_RE.match(value.strip()):
        return int(value.strip())
    return value


ChatId = Annotated[StrictInt, BeforeValidator(_coerce_int_string)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class OwnedTable(BaseModel):
    """A config table owned by takopi: stripped strings, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TelegramTopicsSettings(OwnedTable):
    """``[transports.telegram.topics]``: forum-topic features."""

    enabled: bool = False
    scope: Literal["auto", "main", "projects", "all"] = "auto"


class TelegramFilesSettings(OwnedTable):
    """``[transports.telegram.files]``: ``/file put`` and ``/file get``."""

    max_upload_bytes: ClassVar[int] = FILES_MAX_UPLOAD_BYTES
    max_download_bytes: ClassVar[int] = FILES_MAX_DOWNLOAD_BYTES

    enabled: bool = False
    auto_put: bool = True
    auto_put_mode: Literal["upload", "prompt"] = "upload"
    uploads_dir: str = "incoming"
    allowed_user_ids: list[int] = Field(default_factory=list)
    deny_globs: list[str] = Field(default_factory=lambda: list(DEFAULT_DENY_GLOBS))

    @field_validator("uploads_dir")
    @classmethod
    def _relative_uploads_dir(cls, value: str) -> str:
        if not value:
            raise ValueError("uploads_dir must not be empty")
        if Path(value).is_absolute():
            raise ValueError("uploads_dir must be a relative path")
        return value


class TelegramTransportSettings(OwnedTable):
    """``[transports.telegram]``."""

    bot_token: NonEmptyStr
    chat_id: ChatId
    allowed_user_ids: list[int] = Field(default_factory=list)
    message_overflow: Literal["trim", "split"] = "trim"
    voice_transcription: bool = False
    voice_max_bytes: int = 10 * 1024 * 1024
    voice_transcription_model: str = "gpt-4o-mini-transcribe"
    voice_transcription_base_url: str | None = None
    voice_transcription_api_key: str | None = None
    session_mode: Literal["stateless", "chat"] = "stateless"
    show_resume_line: bool = True
    forward_coalesce_s: float = Field(default=1.0, ge=0)
    media_group_debounce_s: float = Field(default=1.0, ge=0)
    topics: TelegramTopicsSettings = Field(default_factory=TelegramTopicsSettings)
    files: TelegramFilesSettings = Field(default_factory=TelegramFilesSettings)
    # Extensions of this implementation (not in the reference):
    api_url: str = "https://api.telegram.org"
    offline_backlog: Literal["notify", "run", "drop"] = "notify"


__all__ = [
    "DEFAULT_DENY_GLOBS",
    "ChatId",
    "NonEmptyStr",
    "OwnedTable",
    "TelegramFilesSettings",
    "TelegramTopicsSettings",
    "TelegramTransportSettings",
]
