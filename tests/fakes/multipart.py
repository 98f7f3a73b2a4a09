"""A strict ``multipart/form-data`` parser for the fake HTTP servers (stdlib only).

The ``cgi`` module is gone from recent Pythons and the ``email`` parser re-encodes binary
parts; this one splits on the boundary and keeps every byte of file parts as sent.
"""

from __future__ import annotations

import email
import email.message
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FilePart:
    """One uploaded file of a multipart body."""

    filename: str
    content: bytes
    content_type: str


class MultipartError(ValueError):
    """The body is not well-formed ``multipart/form-data``."""


def _boundary(content_type: str) -> bytes:
    header = email.message.Message()
    header["Content-Type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        raise MultipartError(f"not multipart/form-data: {content_type!r}")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("missing boundary")
    return boundary.encode("latin-1")


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, FilePart]]:
    """``(fields, files)`` of a ``multipart/form-data`` body; MultipartError when malformed."""
    delimiter = b"--" + _boundary(content_type)
    if not body.startswith(delimiter):
        raise MultipartError("body does not start with the boundary")
    fields: dict[str, str] = {}
    files: dict[str, FilePart] = {}
    chunks = body.split(b"\r\n" + delimiter)
    # chunks[0] is "--boundary\r\n<part>", the last one starts with "--" (the closing marker)
    first = chunks[0][len(delimiter) :]
    parts = [first, *chunks[1:]]
    if not parts[-1].startswith(b"--"):
        raise MultipartError("missing closing boundary")
    for raw in parts[:-1]:
        if not raw.startswith(b"\r\n"):
            raise MultipartError("malformed part")
        head, sep, content = raw[2:].partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("part without headers")
        headers = email.message_from_bytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise MultipartError("part without a name")
        filename = headers.get_filename()
        if filename is not None:
            files[name] = FilePart(
                filename=filename,
                content=content,
                content_type=headers.get_content_type(),
            )
        else:
            fields[name] = content.decode("utf-8")
    return fields, files


__all__ = ["FilePart", "MultipartError", "parse_multipart"]
