"""Pure parts of plugin environment management: requests, Requires-Python arithmetic,
config edits, interpreter discovery (fake interpreters on PATH) and the wheel repacker."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

from takopi.plugin_envs import config_edit
from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugin_envs.fetch import parse_request, read_wheel
from takopi.plugin_envs.installers import satisfying_version
from takopi.plugin_envs.interpreters import discover, newest_satisfying
from takopi.plugin_envs.self_install import build_wheel_from_installation
from tests.plugin_envs.wheels import build_plugin_wheel


def test_parse_request_kinds(tmp_path: Path) -> None:
    pinned = parse_request("Takopi_Cron[extra]==0.1.0")
    assert (pinned.name, pinned.extras, pinned.pinned) == ("takopi-cron", {"extra"}, True)
    bare = parse_request("takopi-cron")
    assert (bare.name, bare.pinned) == ("takopi-cron", False)
    wheel = build_plugin_wheel(tmp_path, "takopi-x", "1.0", commands=["x"])
    local = parse_request(str(wheel))
    assert local.is_path and local.text == str(wheel.resolve())
    with pytest.raises(PluginEnvError, match="no such file"):
        parse_request(str(tmp_path / "missing-1.0-py3-none-any.whl"))
    with pytest.raises(PluginEnvError, match="environment markers"):
        parse_request('takopi-cron; python_version > "3"')


def test_read_wheel_metadata(tmp_path: Path) -> None:
    wheel = build_plugin_wheel(
        tmp_path,
        "takopi-x",
        "1.2",
        commands=["x", "y"],
        requires_python=">=3.14",
        requires_dist=["takopi>=0.22,<0.23", "msgspec>=0.20; extra == 'fast'"],
    )
    got = read_wheel(wheel, parse_request(str(wheel)))
    assert (got.name, got.version, got.requires_python) == ("takopi-x", "1.2", ">=3.14")
    assert got.requires_dist == ("takopi>=0.22,<0.23", "msgspec>=0.20; extra == 'fast'")
    assert [(e.group, e.name) for e in got.entry_points] == [
        ("takopi.command_backends", "x"),
        ("takopi.command_backends", "y"),
    ]


def test_satisfying_version() -> None:
    assert satisfying_version(">=3.14", Version("3.13.0")) == "3.14"
    assert satisfying_version(">=3.12,<3.13", Version("3.13.0")) == "3.12"
    assert satisfying_version(">=3.11", Version("3.13.0")) == "3.13"
    assert satisfying_version("<3", Version("3.13.0")) is None
    assert satisfying_version(None, Version("3.13.0")) is None


def test_config_apply_sets_unsets_and_keeps_hand_edits(tmp_path: Path) -> None:
    cfg = tmp_path / "takopi.toml"
    raw = {
        "plugins": {
            "enabled": ["takopi-other"],
            "old": {"python": "/envs/old/bin/python", "keep": 1},
            "edited": {"python": "/mine/bin/python"},
        }
    }
    change = config_edit.ConfigChange(
        set_python={"new": "/envs/new/bin/python", "old": "/envs/old2/bin/python"},
        unset_python={"old": "/envs/old/bin/python", "edited": "/envs/e/bin/python"},
        enable={"takopi-new"},
    )
    new, notes = config_edit.apply(raw, change, cfg)
    assert new["plugins"]["old"] == {"python": "/envs/old2/bin/python", "keep": 1}
    assert new["plugins"]["new"] == {"python": "/envs/new/bin/python"}
    assert new["plugins"]["edited"] == {"python": "/mine/bin/python"}
    assert new["plugins"]["enabled"] == ["takopi-other", "takopi-new"]
    assert raw["plugins"]["enabled"] == ["takopi-other"]  # input untouched
    assert any("kept [plugins.edited] python" in n for n in notes)

    back, _ = config_edit.apply(
        new,
        config_edit.ConfigChange(
            unset_python={"new": "/envs/new/bin/python"}, disable={"Takopi_New"}
        ),
        cfg,
    )
    assert "new" not in back["plugins"]
    assert back["plugins"]["enabled"] == ["takopi-other"]
    # an upgrade replaces a key in place: the table keeps its position in the file
    upgraded, _ = config_edit.apply(
        {"plugins": {"a": {"python": "/e/a1/bin/python"}, "b": {"x": 1}}},
        config_edit.ConfigChange(
            unset_python={"a": "/e/a1/bin/python"}, set_python={"a": "/e/a2/bin/python"}
        ),
        cfg,
    )
    assert list(upgraded["plugins"]) == ["a", "b"]
    assert upgraded["plugins"]["a"] == {"python": "/e/a2/bin/python"}
    # an empty allowlist means "everything": never turned into a one-entry list
    empty, notes = config_edit.apply({}, config_edit.ConfigChange(enable={"takopi-new"}), cfg)
    assert empty == {} and notes == []


def fake_python(path: Path, version: str, prefix: str) -> Path:
    answer = json.dumps(
        {"version": version, "base": f"{prefix}/bin/python", "prefix": prefix, "markers": {}}
    )
    path.write_text(f"#!/bin/sh\necho '{answer}'\n")
    path.chmod(0o755)
    return path


def test_discover_dedups_orders_and_drops_old_pythons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyenv = tmp_path / "pyenv"
    for version in ("3.10.4", "3.14.1"):
        bindir = pyenv / "versions" / version / "bin"
        bindir.mkdir(parents=True)
        fake_python(bindir / "python3", version, f"/fake/{version}")
    onpath = tmp_path / "bin"
    onpath.mkdir()
    fake_python(onpath / "python3.14", "3.14.1", "/fake/3.14.1")  # the same installation
    fake_python(onpath / "python3.15", "3.15.0a1", "/fake/3.15")
    (onpath / "python3-config").write_text("#!/bin/sh\nexit 1\n")
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    monkeypatch.setenv("PATH", str(onpath))
    found = discover()
    assert found[0].running
    assert [str(i.version) for i in found[1:]] == ["3.14.1", "3.15.0a1"]
    assert newest_satisfying(found, ">=3.12,<3.15") == found[1]
    assert newest_satisfying(found, ">=3.16") is None
    assert newest_satisfying(found, None) == found[2]


def test_repacked_wheel_holds_the_installed_files(tmp_path: Path) -> None:
    site = tmp_path / "site"
    pkg = site / "demo"
    pkg.mkdir(parents=True)
    files = {
        "demo/__init__.py": b"VALUE = 1\n",
        "demo/data.txt": b"data",
        "demo/__pycache__/__init__.cpython-311.pyc": b"\0junk",
        "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "demo-1.0.dist-info/entry_points.txt": b"[console_scripts]\ndemo = demo:main\n",
        "demo-1.0.dist-info/INSTALLER": b"uv",
        "demo-1.0.dist-info/direct_url.json": b'{"url": "file:///x"}',
    }
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    record = [f"{rel},," for rel in files] + ["../../../bin/demo,,", "demo-1.0.dist-info/RECORD,,"]
    (site / "demo-1.0.dist-info" / "RECORD").write_text("\n".join(record) + "\n")
    dist = metadata.PathDistribution(site / "demo-1.0.dist-info")

    wheel = build_wheel_from_installation(dist, tmp_path / "out")
    assert wheel.name == "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(
            [
                "demo/__init__.py",
                "demo/data.txt",
                "demo-1.0.dist-info/METADATA",
                "demo-1.0.dist-info/entry_points.txt",
                "demo-1.0.dist-info/WHEEL",
                "demo-1.0.dist-info/RECORD",
            ]
        )
        assert archive.read("demo/__init__.py") == b"VALUE = 1\n"
        rows = dict(
            (line.split(",", 1)[0], line.split(",", 1)[1])
            for line in archive.read("demo-1.0.dist-info/RECORD").decode().splitlines()
        )
        digest = base64.urlsafe_b64encode(hashlib.sha256(b"data").digest()).rstrip(b"=").decode()
        assert rows["demo/data.txt"] == f"sha256={digest},4"
        assert rows["demo-1.0.dist-info/RECORD"] == ","
    # the same installation gives the same bytes
    again = build_wheel_from_installation(dist, tmp_path / "out2")
    assert again.read_bytes() == wheel.read_bytes()

    (site / "demo" / "data.txt").unlink()
    with pytest.raises(PluginEnvError, match=r"data\.txt is missing"):
        build_wheel_from_installation(dist, tmp_path / "out3")
    assert not (tmp_path / "out3" / wheel.name).exists()
