"""``/file put`` and ``/file get``: files between a chat and a project's repo or worktree.

Who may transfer files: the users in ``files.allowed_user_ids`` when it is set; otherwise
anyone in a private chat and group admins (``getChatMember``) in groups.

Where: the run directory of the message's context (directives such as ``/proj @branch`` in
the arguments, a replied ``ctx:`` line, else the ambient context prompts use: the managed
topic's binding, the chat's binding or project, the default project), which must name a
project. Paths are relative to it; ``..``, absolute paths, ``~`` and anything whose
real location (symlinks followed) is outside the root are refused, and so are paths matching
``files.deny_globs`` (``.git`` always). Uploads are written to a temp file and renamed into
place, never replace an existing file without ``--force`` and leave nothing behind when they
fail. Upload size is capped at 20 MiB (what bots may download), downloads at 50 MiB (what bots
may send); a directory is sent as a zip without symlinks and denied paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from takopi.config import ConfigError
from takopi.context import RunContext
from takopi.directives import DirectiveError, parse_directives
from takopi.logging import get_logger
from takopi.settings_view import FILES_MAX_DOWNLOAD_BYTES, FILES_MAX_UPLOAD_BYTES

from .attachments import (
    FetchError,
    IncomingFile,
    download,
    incoming_file,
    locate_file,
    replied_file,
)
from .bridge import TelegramFilesConfig
from .client import BotClient
from .files import (
    PathEscapeError,
    ZipTooLargeError,
    deny_reason,
    file_usage,
    format_bytes,
    normalize_relative_path,
    parse_file_command,
    parse_file_prompt,
    resolve_path_within_root,
    write_upload,
    zip_directory,
)
from .types import Reply, TelegramIncomingMessage

MAX_UPLOAD_BYTES = FILES_MAX_UPLOAD_BYTES
MAX_DOWNLOAD_BYTES = FILES_MAX_DOWNLOAD_BYTES
ADMIN_STATUSES = frozenset({"creator", "administrator"})

FILES_DISABLED = "file transfer disabled; enable `[transports.telegram.files]`."
PUT_USAGE = "usage: `/file put <path>`"
GET_USAGE = "usage: `/file get <path>`"
ALREADY_EXISTS = "file already exists; use --force to overwrite."
UPLOAD_ESCAPES = "upload path escapes the repo root."
DOWNLOAD_ESCAPES = "download path escapes the repo root."
UPLOAD_TOO_LARGE = "file is too large to upload."
DOWNLOAD_TOO_LARGE = "file is too large to send."
NO_UPLOAD_CONTEXT = "no project context available for file upload."
NO_DOWNLOAD_CONTEXT = "no project context available for file download."
NOT_ADMIN = "file transfer is restricted to group admins."
NO_SENDER = "cannot verify sender for file transfer."
MEMBER_CHECK_FAILED = "failed to verify file transfer permissions."
NOT_ALLOWED = "file transfer is not allowed for this user."
FETCH_FAILED = "failed to fetch file."
DOWNLOAD_FAILED = "failed to download file."
SEND_FAILED = "failed to send file."
IS_DIRECTORY = "upload path is a directory; end it with `/` to upload into it."
EMPTY_FILE = "file is empty; nothing to send."
MARKDOWN_LINE_BREAK = "  \n"
"""Between the lines of a multi-line reply (a single newline is a space in Markdown)."""

log = get_logger(__name__)


class TransferError(Exception):
    """A transfer was refused or failed; the message is meant for the user as is."""


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where a transfer happens: the context, its run directory and how to name it."""

    context: RunContext
    root: Path
    label: str
    args: str
    """What is left of the arguments once directives are taken out."""


@dataclass(frozen=True, slots=True)
class SavedFile:
    """One stored upload: its path relative to the root, and its size."""

    rel: PurePosixPath
    size: int


@dataclass(frozen=True, slots=True)
class UploadOutcome:
    """What a multi-file upload did: saved files, and ``(name, error)`` for the rest."""

    saved: tuple[SavedFile, ...]
    failed: tuple[tuple[str, str], ...]


def _fetch_message(error: FetchError) -> str:
    return {"too_large": UPLOAD_TOO_LARGE, "fetch": FETCH_FAILED, "download": DOWNLOAD_FAILED}[
        error.reason
    ]


def checked_path(raw: str, deny_globs: Sequence[str], *, escapes: str) -> PurePosixPath:
    """A repo-relative path from user input; TransferError when unsafe or denied."""
    cleaned = raw.strip().replace("\\", "/")
    rule = deny_reason(PurePosixPath(cleaned), deny_globs) if cleaned else None
    if rule is not None:
        raise TransferError(f"path denied by rule: {rule}")
    rel = normalize_relative_path(cleaned)
    if rel is None:
        raise TransferError(escapes)
    posix = PurePosixPath(rel.as_posix())
    rule = deny_reason(posix, deny_globs)
    if rule is not None:
        raise TransferError(f"path denied by rule: {rule}")
    return posix


def located_path(
    root: Path, rel: PurePosixPath, deny_globs: Sequence[str], *, escapes: str
) -> Path:
    """``root/rel`` with symlinks resolved; refused when it leaves ``root`` or its real
    location matches a deny rule."""
    target = resolve_path_within_root(root, rel)
    if target is None:
        raise TransferError(escapes)
    real_rel = PurePosixPath(target.relative_to(root.resolve()).as_posix())
    if real_rel.parts:
        rule = deny_reason(real_rel, deny_globs)
        if rule is not None:
            raise TransferError(f"path denied by rule: {rule}")
    return target


def upload_destination(requested: str | None, name: str, uploads_dir: str) -> str:
    """The path an upload named ``name`` goes to: ``requested`` (into it when it ends with
    ``/``), else ``<uploads_dir>/<name>``."""
    if not requested:
        return f"{uploads_dir.rstrip('/')}/{name}"
    if requested.endswith("/"):
        return f"{requested}{name}"
    return requested


class FileTransfer:
    """``/file put|get`` handling and the upload primitive shared with auto-put and albums.

    ``ambient_context(msg)`` gives the context a message runs in when it names none (as for
    prompts: topic, chat binding, chat project); ``reply(msg, markdown)`` answers a message
    (in its forum thread)."""

    def __init__(
        self,
        *,
        bot: BotClient,
        config: TelegramFilesConfig,
        runtime: Any,
        reply: Reply,
        ambient_context: Callable[[TelegramIncomingMessage], Awaitable[RunContext | None]],
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
    ) -> None:
        self.bot = bot
        self.config = config
        self.runtime = runtime
        self.reply = reply
        self.ambient_context = ambient_context
        self.max_upload_bytes = max_upload_bytes
        self.max_download_bytes = max_download_bytes

    # -- entry point ----------------------------------------------------------------------
    async def handle_command(self, msg: TelegramIncomingMessage, args_text: str) -> None:
        """``/file <put|get> …``."""
        if not self.config.enabled:
            await self.reply(msg, FILES_DISABLED)
            return
        command, rest, error = parse_file_command(args_text)
        if command is None:
            await self.reply(msg, error or file_usage())
            return
        if not await self.permitted(msg):
            return
        try:
            if command == "put":
                await self._put(msg, rest)
            else:
                await self._get(msg, rest)
        except TransferError as exc:
            await self.reply(msg, str(exc))

    # -- permissions ----------------------------------------------------------------------
    async def permitted(self, msg: TelegramIncomingMessage) -> bool:
        """Whether the sender may transfer files here; replies with the reason when not."""
        allowed = self.config.allowed_user_ids
        if allowed:
            if msg.sender_id is not None and msg.sender_id in allowed:
                return True
            log.info("telegram.files.denied", reason="not_allowed", sender_id=msg.sender_id)
            await self.reply(msg, NOT_ALLOWED)
            return False
        if msg.is_private:
            return True
        if msg.sender_id is None:
            await self.reply(msg, NO_SENDER)
            return False
        member = await self.bot.get_chat_member(msg.chat_id, msg.sender_id)
        if not isinstance(member, dict):
            await self.reply(msg, MEMBER_CHECK_FAILED)
            return False
        if member.get("status") in ADMIN_STATUSES:
            return True
        log.info("telegram.files.denied", reason="not_admin", sender_id=msg.sender_id)
        await self.reply(msg, NOT_ADMIN)
        return False

    # -- where ----------------------------------------------------------------------------
    async def workspace(
        self, msg: TelegramIncomingMessage, text: str, *, upload: bool
    ) -> Workspace:
        """Resolve the context of ``text`` (directives, reply ``ctx:``, chat binding, default
        project) to a run directory; TransferError when there is none."""
        try:
            resolved = self.runtime.resolve_message(
                text=text,
                reply_text=msg.reply_to_text,
                ambient_context=await self.ambient_context(msg),
                chat_id=msg.chat_id,
            )
            args = parse_directives(
                text,
                engine_ids=self.runtime.engine_ids,
                projects=self.runtime.project_aliases(),
            ).prompt
        except DirectiveError as exc:
            raise TransferError(f"error:\n{exc}") from None
        context = resolved.context
        missing = NO_UPLOAD_CONTEXT if upload else NO_DOWNLOAD_CONTEXT
        if context is None or not context.project:
            raise TransferError(missing)
        try:
            # may create a git worktree: keep it off the event loop
            root = await anyio.to_thread.run_sync(self.runtime.resolve_run_cwd, context)
        except ConfigError as exc:
            raise TransferError(f"error:\n{exc}") from None
        if root is None:
            raise TransferError(missing)
        alias = self.runtime.project_alias_for_key(context.project)
        label = f"{alias} @{context.branch}" if context.branch else str(alias)
        return Workspace(context=context, root=Path(root), label=label, args=args)

    # -- uploads --------------------------------------------------------------------------
    async def save(
        self,
        incoming: IncomingFile,
        workspace: Workspace,
        requested: str | None,
        *,
        force: bool,
    ) -> SavedFile:
        """Fetch ``incoming`` and store it (see :func:`upload_destination`); TransferError
        with the user-facing reason when refused or failed. Checks run before downloading."""
        deny = tuple(self.config.deny_globs)
        try:
            remote = await locate_file(self.bot, incoming, max_bytes=self.max_upload_bytes)
        except FetchError as exc:
            raise TransferError(_fetch_message(exc)) from None
        destination = upload_destination(requested, remote.name, self.config.uploads_dir)
        rel = checked_path(destination, deny, escapes=UPLOAD_ESCAPES)
        target = located_path(workspace.root, rel, deny, escapes=UPLOAD_ESCAPES)
        if target.is_dir():
            raise TransferError(IS_DIRECTORY)
        if target.exists() and not force:
            raise TransferError(ALREADY_EXISTS)
        try:
            data = await download(self.bot, remote, max_bytes=self.max_upload_bytes)
        except FetchError as exc:
            raise TransferError(_fetch_message(exc)) from None
        try:
            await anyio.to_thread.run_sync(
                lambda: write_upload(target, data, overwrite=force, root=workspace.root)
            )
        except FileExistsError:
            raise TransferError(ALREADY_EXISTS) from None
        except IsADirectoryError:
            raise TransferError(IS_DIRECTORY) from None
        except PathEscapeError:
            raise TransferError(UPLOAD_ESCAPES) from None
        except OSError as exc:
            log.warning("telegram.files.write_failed", error=str(exc))
            raise TransferError(f"failed to write file: {exc.strerror or exc}") from None
        log.info("telegram.files.saved", path=str(rel), size=len(data))
        return SavedFile(rel=rel, size=len(data))

    async def save_many(
        self,
        files: Sequence[IncomingFile],
        workspace: Workspace,
        directory: str | None,
        *,
        force: bool,
    ) -> UploadOutcome:
        """Store several files into ``directory`` (default: ``uploads_dir``); one failure
        does not stop the others."""
        into = None if not directory else directory.rstrip("/") + "/"
        saved: list[SavedFile] = []
        failed: list[tuple[str, str]] = []
        for incoming in files:
            try:
                saved.append(await self.save(incoming, workspace, into, force=force))
            except TransferError as exc:
                failed.append((incoming.display_name, str(exc)))
        return UploadOutcome(saved=tuple(saved), failed=tuple(failed))

    def saved_text(self, saved: SavedFile, workspace: Workspace) -> str:
        """``saved `rel/path` in `<ctx>` (1.2 kb)``."""
        return f"saved `{saved.rel}` in `{workspace.label}` ({format_bytes(saved.size)})"

    def outcome_text(self, outcome: UploadOutcome, workspace: Workspace) -> str:
        """``saved `a`, `b` to `dir/` in `<ctx>` (x kb)`` plus a ``failed:`` line per failure."""
        lines: list[str] = []
        if outcome.saved:
            parents = {str(s.rel.parent) for s in outcome.saved}
            names = ", ".join(f"`{s.rel.name}`" for s in outcome.saved)
            total = format_bytes(sum(s.size for s in outcome.saved))
            if len(parents) == 1:
                where = parents.pop()
                where = "" if where == "." else f" to `{where}/`"
                lines.append(f"saved {names}{where} in `{workspace.label}` ({total})")
            else:
                paths = ", ".join(f"`{s.rel}`" for s in outcome.saved)
                lines.append(f"saved {paths} in `{workspace.label}` ({total})")
        lines += [f"failed: `{name}` ({error})" for name, error in outcome.failed]
        return MARKDOWN_LINE_BREAK.join(lines)

    async def put_files(
        self, msg: TelegramIncomingMessage, files: Sequence[IncomingFile], args_text: str
    ) -> None:
        """``/file put [directives] [path] [--force]`` for the given files (permission
        already checked); replies with the result."""
        if not files:
            await self.reply(msg, PUT_USAGE)
            return
        try:
            workspace = await self.workspace(msg, args_text, upload=True)
            path, force, error = parse_file_prompt(workspace.args, allow_empty=True)
            if error is not None:
                raise TransferError(error)
            if len(files) == 1:
                saved = await self.save(files[0], workspace, path, force=force)
                await self.reply(msg, self.saved_text(saved, workspace))
                return
            outcome = await self.save_many(files, workspace, path, force=force)
        except TransferError as exc:
            await self.reply(msg, str(exc))
            return
        await self.reply(msg, self.outcome_text(outcome, workspace))

    async def _put(self, msg: TelegramIncomingMessage, args_text: str) -> None:
        attached = incoming_file(msg.raw) or replied_file(msg.raw)
        await self.put_files(msg, [attached] if attached is not None else [], args_text)

    # -- downloads ------------------------------------------------------------------------
    async def _get(self, msg: TelegramIncomingMessage, args_text: str) -> None:
        workspace = await self.workspace(msg, args_text, upload=False)
        path, _force, error = parse_file_prompt(workspace.args, allow_empty=True)
        if error is not None:
            raise TransferError(error)
        if not path:
            raise TransferError(GET_USAGE)
        deny = tuple(self.config.deny_globs)
        rel = checked_path(path, deny, escapes=DOWNLOAD_ESCAPES)
        target = located_path(workspace.root, rel, deny, escapes=DOWNLOAD_ESCAPES)
        root = workspace.root.resolve()
        if target.is_dir():
            real_rel = PurePosixPath(target.relative_to(root).as_posix())
            try:
                content = await anyio.to_thread.run_sync(
                    lambda: zip_directory(root, real_rel, deny, max_bytes=self.max_download_bytes)
                )
            except ZipTooLargeError:
                raise TransferError(DOWNLOAD_TOO_LARGE) from None
            filename = f"{rel.name}.zip"
        elif target.is_file():
            size = target.stat().st_size
            if size > self.max_download_bytes:
                raise TransferError(DOWNLOAD_TOO_LARGE)
            if size == 0:
                raise TransferError(EMPTY_FILE)
            content = await anyio.to_thread.run_sync(target.read_bytes)
            filename = rel.name
        elif target.exists():
            raise TransferError(f"`{rel}` is not a regular file.")
        else:
            raise TransferError(f"`{rel}` does not exist in `{workspace.label}`.")
        sent = await self.bot.send_document(
            msg.chat_id,
            filename,
            content,
            reply_to_message_id=msg.message_id,
            message_thread_id=msg.thread_id,
        )
        if sent is None:
            raise TransferError(SEND_FAILED)
        log.info("telegram.files.sent", path=str(rel), size=len(content))


__all__ = [
    "FILES_DISABLED",
    "GET_USAGE",
    "MARKDOWN_LINE_BREAK",
    "MAX_DOWNLOAD_BYTES",
    "MAX_UPLOAD_BYTES",
    "PUT_USAGE",
    "FileTransfer",
    "SavedFile",
    "TransferError",
    "UploadOutcome",
    "Workspace",
    "checked_path",
    "located_path",
    "upload_destination",
]
