"""End to end through the fake Bot API: ``/file put``, ``/file get`` and auto-put uploads."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.codex import build_runner
from takopi.transport_runtime import TransportRuntime
from tests.telegram.conftest import CHAT, make_runtime

pytestmark = pytest.mark.timeout(120)

GROUP = -4004
ADMIN = 61
MEMBER = 62


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.py").write_text("print('hi')\n")
    (path / "src" / "key.pem").write_text("secret key\n")
    (path / ".env").write_text("TOKEN=secret\n")
    return path


@pytest.fixture
def other_repo(tmp_path: Path) -> Path:
    path = tmp_path / "other"
    path.mkdir()
    return path


@pytest.fixture
def files_harness(harness_factory, tmp_path, repo, other_repo):
    """A harness with file transfer on and two projects (``proj`` is the default)."""

    def make(*, default_project: str | None = "proj", **settings):
        projects = ProjectsConfig(
            projects={
                "proj": ProjectConfig(alias="proj", path=repo),
                "other": ProjectConfig(alias="other", path=other_repo),
            },
            default_project=default_project,
        )
        files = {"enabled": True, **settings.pop("files", {})}
        runtime = make_runtime(tmp_path / "takopi.toml", projects)
        return harness_factory(runtime=runtime, files=files, **settings).start()

    return make


def _reply(h, msg, **kw):
    return h.reply_to(msg["chat"]["id"], msg["message_id"], **kw)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".takopi-upload-*"))


# -- /file put -------------------------------------------------------------------------------


def test_put_saves_then_refuses_to_overwrite_without_force(server, fake_codex, files_harness, repo):
    h = files_harness()
    first = server.send_user_document(
        CHAT, b"hello", file_name="a.txt", caption="/file put docs/a.txt"
    )
    assert _reply(h, first).text == "saved docs/a.txt in proj (5 b)"
    assert (repo / "docs" / "a.txt").read_bytes() == b"hello"

    again = server.send_user_document(
        CHAT, b"changed", file_name="a.txt", caption="/file put docs/a.txt"
    )
    assert _reply(h, again).text == "file already exists; use --force to overwrite."
    assert (repo / "docs" / "a.txt").read_bytes() == b"hello"

    forced = server.send_user_document(
        CHAT, b"changed!", file_name="a.txt", caption="/file put --force docs/a.txt"
    )
    assert _reply(h, forced).text == "saved docs/a.txt in proj (8 b)"
    assert (repo / "docs" / "a.txt").read_bytes() == b"changed!"
    assert _leftovers(repo) == []
    # the reply marks paths and context as code
    reply = _reply(h, forced)
    coded = [reply.text[e["offset"] : e["offset"] + e["length"]] for e in reply.entities]
    assert coded == ["docs/a.txt", "proj"]


def test_put_into_a_directory_the_uploads_dir_and_another_project(
    server, fake_codex, files_harness, repo, other_repo
):
    h = files_harness()
    into_dir = server.send_user_document(
        CHAT, b"spec", file_name="spec.pdf", caption="/file put docs/"
    )
    assert _reply(h, into_dir).text == "saved docs/spec.pdf in proj (4 b)"
    default = server.send_user_document(CHAT, b"plain", file_name="notes.md", caption="/file put")
    assert _reply(h, default).text == "saved incoming/notes.md in proj (5 b)"
    elsewhere = server.send_user_document(
        CHAT, b"x" * 1536, file_name="big.bin", caption="/file put /other data/"
    )
    assert _reply(h, elsewhere).text == "saved data/big.bin in other (1.5 kb)"
    assert (repo / "docs" / "spec.pdf").read_bytes() == b"spec"
    assert (repo / "incoming" / "notes.md").read_bytes() == b"plain"
    assert (other_repo / "data" / "big.bin").stat().st_size == 1536
    # replying /file put to a file stores that file
    posted = server.send_user_document(CHAT, b"later", file_name="later.txt", caption="later")
    _reply(h, posted, text="usage: /file put <path>")  # a caption in upload mode
    put = server.send_user_message(CHAT, "/file put docs/", reply_to=posted["message_id"])
    assert _reply(h, put).text == "saved docs/later.txt in proj (5 b)"


def test_put_refuses_denied_and_escaping_paths_and_leaves_nothing(
    server, fake_codex, files_harness, repo, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "link").symlink_to(outside)
    (repo / "src" / "alias.txt").symlink_to(repo / ".env")
    h = files_harness()
    cases = {
        "/file put .env": "path denied by rule: .env",
        "/file put certs/server.pem": "path denied by rule: *.pem",
        "/file put .git/config": "path denied by rule: .git/**",
        "/file put ../escape.txt": "upload path escapes the repo root.",
        "/file put /tmp/abs.txt": "upload path escapes the repo root.",
        "/file put ~/home.txt": "upload path escapes the repo root.",
        "/file put link/x.txt": "upload path escapes the repo root.",
        "/file put --force src/alias.txt": "path denied by rule: .env",
        "/file put src": "upload path is a directory; end it with / to upload into it.",
        "/file put --wat a.txt": "unknown flag: --wat",
    }
    for caption, expected in cases.items():
        msg = server.send_user_document(CHAT, b"payload", file_name="x.txt", caption=caption)
        assert _reply(h, msg).text == expected, caption
    assert list(outside.iterdir()) == []
    assert (repo / ".env").read_text() == "TOKEN=secret\n"
    assert not (tmp_path / "escape.txt").exists()
    assert not (repo / "certs").exists()
    assert _leftovers(repo) == []
    # refused before anything was downloaded
    assert server.downloads == []


def test_put_too_large_and_without_a_file(server, fake_codex, files_harness, repo):
    h = files_harness()
    big = server.send_user_document(
        CHAT, b"tiny", file_name="huge.iso", caption="/file put", size=20 * 1024 * 1024 + 1
    )
    assert _reply(h, big).text == "file is too large to upload."
    bare = server.send_user_message(CHAT, "/file put docs/x.txt")
    assert _reply(h, bare).text == "usage: /file put <path>"
    what = server.send_user_message(CHAT, "/file frob")
    assert _reply(h, what).text == "usage: /file put <path> or /file get <path>"
    assert not (repo / "incoming").exists()
    assert server.calls("getFile") == []


def test_put_without_a_project_context(server, fake_codex, files_harness, repo):
    h = files_harness(default_project=None)
    msg = server.send_user_document(CHAT, b"data", file_name="a.txt", caption="/file put a.txt")
    assert _reply(h, msg).text == "no project context available for file upload."
    get = server.send_user_message(CHAT, "/file get src/app.py")
    assert _reply(h, get).text == "no project context available for file download."
    # a directive names one
    named = server.send_user_document(
        CHAT, b"data", file_name="a.txt", caption="/file put /proj a.txt"
    )
    assert _reply(h, named).text == "saved a.txt in proj (4 b)"


# -- /file get -------------------------------------------------------------------------------


def test_get_sends_a_file_and_a_directory_as_zip(server, fake_codex, files_harness, repo, tmp_path):
    (tmp_path / "secret.txt").write_text("outside")
    (repo / "src" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (repo / "src" / "sub").mkdir()
    (repo / "src" / "sub" / "deep.txt").write_text("deep")
    h = files_harness()
    ask = server.send_user_message(CHAT, "/file get src/app.py")
    doc = h.wait_bot_message(CHAT, lambda m: m.document is not None)
    assert doc.reply_to_message_id == ask["message_id"]
    assert (doc.document.filename, doc.document.content) == ("app.py", b"print('hi')\n")

    ask_dir = server.send_user_message(CHAT, "/file get src")
    zipped = h.wait_bot_message(
        CHAT, lambda m: m.document is not None and m.reply_to_message_id == ask_dir["message_id"]
    )
    assert zipped.document.filename == "src.zip"
    with zipfile.ZipFile(io.BytesIO(zipped.document.content)) as archive:
        assert sorted(archive.namelist()) == ["src/app.py", "src/sub/deep.txt"]
        assert archive.read("src/sub/deep.txt") == b"deep"
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())


def test_get_refusals(server, fake_codex, files_harness, repo):
    big = repo / "big.bin"
    with big.open("wb") as handle:  # sparse: 50 MiB + 1 without writing it
        handle.truncate(50 * 1024 * 1024 + 1)
    (repo / "empty.txt").write_bytes(b"")
    h = files_harness()
    cases = {
        "/file get .env": "path denied by rule: .env",
        "/file get src/key.pem": "path denied by rule: *.pem",
        "/file get ../repo/src/app.py": "download path escapes the repo root.",
        "/file get nope.txt": "nope.txt does not exist in proj.",
        "/file get big.bin": "file is too large to send.",
        "/file get empty.txt": "file is empty; nothing to send.",
        "/file get": "usage: /file get <path>",
    }
    for text, expected in cases.items():
        msg = server.send_user_message(CHAT, text)
        assert _reply(h, msg).text == expected, text
    assert server.sent_documents(CHAT) == []


# -- permissions -----------------------------------------------------------------------------


def test_group_needs_an_admin_and_allowed_user_ids_restricts(
    server, fake_codex, files_harness, repo
):
    server.add_chat(GROUP)
    server.set_member(GROUP, ADMIN, "administrator")
    h = files_harness(chat_id=GROUP)
    denied = server.send_user_message(GROUP, "/file get src/app.py", user_id=MEMBER)
    assert _reply(h, denied).text == "file transfer is restricted to group admins."
    allowed = server.send_user_message(GROUP, "/file get src/app.py", user_id=ADMIN)
    doc = h.wait_bot_message(GROUP, lambda m: m.document is not None)
    assert doc.reply_to_message_id == allowed["message_id"]
    assert server.calls("getChatMember")


def test_allowed_user_ids_apply_everywhere(server, fake_codex, files_harness, repo):
    server.add_chat(2002)
    h = files_harness(files={"allowed_user_ids": [2002]}, allowed_user_ids=[CHAT, 2002])
    refused = server.send_user_message(CHAT, "/file get src/app.py")
    assert _reply(h, refused).text == "file transfer is not allowed for this user."
    ok = server.send_user_message(2002, "/file get src/app.py")
    doc = h.wait_bot_message(2002, lambda m: m.document is not None)
    assert doc.reply_to_message_id == ok["message_id"]
    # uploads too
    upload = server.send_user_document(CHAT, b"x", file_name="x.txt")
    assert _reply(h, upload).text == "file transfer is not allowed for this user."
    assert not (repo / "incoming").exists()


# -- auto-put --------------------------------------------------------------------------------


def test_auto_put_upload_mode(server, fake_codex, files_harness, repo):
    h = files_harness()
    plain = server.send_user_document(CHAT, b"%PDF-1.7", file_name="report.pdf")
    assert _reply(h, plain).text == "saved incoming/report.pdf in proj (8 b)"
    assert (repo / "incoming" / "report.pdf").read_bytes() == b"%PDF-1.7"
    photo = server.send_user_photo(CHAT, b"\xff\xd8" + os.urandom(100))
    saved = _reply(h, photo)
    assert saved.text.startswith("saved incoming/file_") and saved.text.endswith(
        ".jpg in proj (102 b)"
    )
    video = server.send_user_document(CHAT, b"mp4data", file_name="clip.mp4", kind="video")
    assert _reply(h, video).text == "saved incoming/clip.mp4 in proj (7 b)"
    captioned = server.send_user_document(CHAT, b"x", file_name="c.txt", caption="what is this?")
    assert _reply(h, captioned).text == "usage: /file put <path>"
    assert not (repo / "incoming" / "c.txt").exists()
    assert fake_codex.calls() == []


def test_auto_put_off_only_explains(server, fake_codex, files_harness, repo):
    h = files_harness(files={"auto_put": False})
    plain = server.send_user_document(CHAT, b"data", file_name="a.txt")
    assert _reply(h, plain).text == "usage: /file put <path>"
    assert not (repo / "incoming").exists()


def test_auto_put_prompt_mode_runs_the_caption_with_the_upload(
    server, fake_codex, files_harness, repo, other_repo
):
    h = files_harness(files={"auto_put_mode": "prompt"})
    doc = server.send_user_document(CHAT, b"log line", file_name="app.log", caption="why failing?")
    final = h.final_for(CHAT, doc["message_id"])
    assert "ok: why failing?" in final.text
    call = fake_codex.calls()[0]
    assert call["prompt"] == "why failing?\n\n[uploaded file: incoming/app.log]"
    assert call["cwd"] == str(repo)
    assert (repo / "incoming" / "app.log").read_bytes() == b"log line"
    # caption directives choose the project for the file and the run
    directed = server.send_user_document(
        CHAT, b"csv", file_name="data.csv", caption="/other load it"
    )
    h.final_for(CHAT, directed["message_id"])
    call = fake_codex.calls()[1]
    assert call["prompt"] == "load it\n\n[uploaded file: incoming/data.csv]"
    assert call["cwd"] == str(other_repo)
    assert (other_repo / "incoming" / "data.csv").read_bytes() == b"csv"
    # no caption: just saved
    plain = server.send_user_document(CHAT, b"z", file_name="z.txt")
    assert _reply(h, plain).text == "saved incoming/z.txt in proj (1 b)"
    assert len(fake_codex.calls()) == 2


def test_files_disabled_ignores_every_upload(server, fake_codex, harness_factory, tmp_path):
    h = harness_factory().start()
    uploads = [
        server.send_user_document(CHAT, b"doc", file_name="a.txt"),
        server.send_user_document(CHAT, b"doc", file_name="b.txt", caption="run this"),
        server.send_user_photo(CHAT, b"photo", caption="and this"),
        server.send_user_document(CHAT, b"a", file_name="1.txt", media_group_id="g1", caption="x"),
        server.send_user_document(CHAT, b"b", file_name="2.txt", media_group_id="g1"),
    ]
    marker = server.send_user_message(CHAT, "marker")
    h.final_for(CHAT, marker["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["marker"]
    upload_ids = {u["message_id"] for u in uploads}
    answered = [
        m
        for m in server.bot_messages(CHAT, include_deleted=True)
        if m.reply_to_message_id in upload_ids
    ]
    assert answered == []
    assert server.calls("getFile") == []


def test_command_menu_lists_file_when_enabled(server, fake_codex, files_harness):
    files_harness()
    server.wait_for(lambda: server.commands)
    names = [c["command"] for c in server.commands]
    assert names.index("file") == names.index("cancel") - 1


def test_an_unexpected_failure_is_answered(server, fake_codex, harness_factory, tmp_path, repo):
    class BrokenRuntime(TransportRuntime):
        def resolve_run_cwd(self, context):
            raise RuntimeError("disk on fire")

    projects = ProjectsConfig(
        projects={"proj": ProjectConfig(alias="proj", path=repo)}, default_project="proj"
    )
    runner = build_runner({}, tmp_path / "takopi.toml")
    router = AutoRouter([RunnerEntry(engine="codex", runner=runner)], default_engine="codex")
    runtime = BrokenRuntime(router=router, projects=projects, config_path=tmp_path / "takopi.toml")
    h = harness_factory(runtime=runtime, files={"enabled": True}).start()
    msg = server.send_user_message(CHAT, "/file get src/app.py")
    assert _reply(h, msg).text == "error: file transfer failed: disk on fire"
    upload = server.send_user_document(CHAT, b"x", file_name="x.txt")
    assert _reply(h, upload).text == "error: file upload failed: disk on fire"


def test_documents_are_routed_before_plugin_commands(
    server, fake_codex, files_harness, repo, monkeypatch
):
    """Reference order: … trigger ⇒ voice ⇒ document ⇒ plugin ⇒ prompt."""
    import takopi.telegram.dispatch as dispatch_mod
    from takopi.commands import CommandResult

    handled: list[str] = []

    class Hello:
        id = "hello"
        description = "say hello"

        async def handle(self, ctx):
            handled.append(ctx.args_text)
            return CommandResult(text="hello back")

    monkeypatch.setattr(dispatch_mod, "list_command_ids", lambda allowlist=None: ["hello"])
    monkeypatch.setattr(
        dispatch_mod, "get_command", lambda cid, allowlist=None, required=True: Hello()
    )
    h = files_harness()
    captioned = server.send_user_document(CHAT, b"x", file_name="x.txt", caption="/hello doc")
    assert _reply(h, captioned).text == "usage: /file put <path>"
    typed = server.send_user_message(CHAT, "/hello text")
    assert _reply(h, typed).text == "hello back"
    assert handled == ["text"]
