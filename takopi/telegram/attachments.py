"""The file a Telegram message carries (a document, a video, a photo or a voice note), and
fetching it from the Bot API within a size limit.

Photos arrive as several sizes; the largest one (by ``file_size``, else width x height) is
the one taken, like a document without a file name. Videos are taken as documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .client_api import TelegramFileTooLargeError
from .files import default_upload_name


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """A file attached to a message, as Telegram describes it (before ``getFile``)."""

    file_id: str
    kind: str
    """``document``, ``video``, ``photo`` or ``voice``."""
    file_name: str | None = None
    file_size: int | None = None
    mime_type: str | None = None

    @property
    def display_name(self) -> str:
        """A name to show in messages before the file is fetched."""
        return self.file_name or self.kind


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _from_media(media: Any, kind: str) -> IncomingFile | None:
    if not isinstance(media, Mapping):
        return None
    file_id = _str(media.get("file_id"))
    if file_id is None:
        return None
    return IncomingFile(
        file_id=file_id,
        kind=kind,
        file_name=_str(media.get("file_name")),
        file_size=_size(media.get("file_size")),
        mime_type=_str(media.get("mime_type")),
    )


def _largest_photo(sizes: Any) -> IncomingFile | None:
    if not isinstance(sizes, list):
        return None
    candidates = [s for s in sizes if isinstance(s, Mapping) and _str(s.get("file_id"))]
    if not candidates:
        return None

    def weight(size: Mapping[str, Any]) -> tuple[int, int]:
        area = (_size(size.get("width")) or 0) * (_size(size.get("height")) or 0)
        return (_size(size.get("file_size")) or 0, area)

    return _from_media(max(candidates, key=weight), "photo")


def incoming_file(raw: Mapping[str, Any] | None) -> IncomingFile | None:
    """The document, video or (largest) photo of a raw Telegram message, if any."""
    if not isinstance(raw, Mapping):
        return None
    return (
        _from_media(raw.get("document"), "document")
        or _from_media(raw.get("video"), "video")
        or _largest_photo(raw.get("photo"))
    )


def replied_file(raw: Mapping[str, Any] | None) -> IncomingFile | None:
    """The file of the message ``raw`` replies to (``/file put`` sent as a reply to a file)."""
    if not isinstance(raw, Mapping):
        return None
    reply = raw.get("reply_to_message")
    return incoming_file(reply) if isinstance(reply, Mapping) else None


def incoming_voice(raw: Mapping[str, Any] | None) -> IncomingFile | None:
    """The voice note of a raw Telegram message, if any."""
    if not isinstance(raw, Mapping):
        return None
    return _from_media(raw.get("voice"), "voice")


class FileSource(Protocol):
    """The two Bot API reads a file fetch needs (``TelegramClient`` has them)."""

    async def get_file(self, file_id: str) -> dict[str, Any] | None: ...

    async def download_file(
        self, file_path: str, *, max_bytes: int | None = None
    ) -> bytes | None: ...


FetchFailure = Literal["too_large", "fetch", "download"]


class FetchError(Exception):
    """A file could not be fetched: ``too_large`` (over the limit, by what Telegram declares
    or by what arrived), ``fetch`` (``getFile`` failed) or ``download`` (the download
    failed)."""

    def __init__(self, reason: FetchFailure) -> None:
        super().__init__(reason)
        self.reason: FetchFailure = reason


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file ``getFile`` described: where to download it and the name to save it under."""

    file_path: str
    name: str
    size: int | None


async def locate_file(source: FileSource, incoming: IncomingFile, *, max_bytes: int) -> RemoteFile:
    """``getFile`` for ``incoming`` after checking its declared size; raises FetchError."""
    if incoming.file_size is not None and incoming.file_size > max_bytes:
        raise FetchError("too_large")
    info = await source.get_file(incoming.file_id)
    file_path = _str(info.get("file_path")) if isinstance(info, Mapping) else None
    if info is None or file_path is None:
        raise FetchError("fetch")
    size = _size(info.get("file_size"))
    if size is not None and size > max_bytes:
        raise FetchError("too_large")
    name = default_upload_name(incoming.file_name, file_path)
    return RemoteFile(file_path=file_path, name=name, size=size)


async def download(source: FileSource, remote: RemoteFile, *, max_bytes: int) -> bytes:
    """The content of ``remote``, never more than ``max_bytes``; raises FetchError."""
    try:
        data = await source.download_file(remote.file_path, max_bytes=max_bytes)
    except TelegramFileTooLargeError:
        raise FetchError("too_large") from None
    if data is None:
        raise FetchError("download")
    if len(data) > max_bytes:
        raise FetchError("too_large")
    return data


__all__ = [
    "FetchError",
    "FileSource",
    "IncomingFile",
    "RemoteFile",
    "download",
    "incoming_file",
    "incoming_voice",
    "locate_file",
    "replied_file",
]
