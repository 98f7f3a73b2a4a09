"""``takopi plugins install|list|upgrade|remove`` with local plugin wheels.

Real venvs (uv, and pip for one test), real interpreters (3.11 running takopi; 3.12 and 3.13
through a fake ``$PYENV_ROOT``), this takopi installed editable beside the plugin. Plugins come
from a local find-links directory; takopi's own dependencies from the installer's cache or
PyPI. Every failing command must leave the config byte-identical and existing environments
untouched.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
import tomli_w

import takopi
from tests.plugin_envs.conftest import PluginEnvCli, local_index_env
from tests.plugin_envs.wheels import build_plugin_wheel

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

BASE_CONFIG = 'transport = "telegram"\ndefault_engine = "codex"\n\n[plugins.other]\nkey = 1\n'


def config(cli: PluginEnvCli) -> dict:
    return tomllib.loads(cli.config.read_text())


def env_python(cli: PluginEnvCli, plugin_id: str) -> Path:
    return Path(config(cli)["plugins"][plugin_id]["python"])


def in_env(python: Path, code: str) -> str:
    return subprocess.run(
        [str(python), "-I", "-c", code],  # -I: not the checkout in the current directory
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def test_install_picks_newest_satisfying_interpreter_then_list_and_remove(
    cli: PluginEnvCli, wheels: Path
) -> None:
    wheel = build_plugin_wheel(
        wheels, "takopi-envtest", "0.1.0", commands=["envtest"], requires_python=">=3.12"
    )
    cli.config.write_text(BASE_CONFIG)

    out = cli.ok("install", str(wheel))
    assert "requires Python >=3.12, which excludes Python 3.11" in out, out
    assert "using Python 3.13." in out, out
    python = env_python(cli, "envtest")
    assert python.is_relative_to(cli.envs_root / "takopi-envtest"), python
    assert in_env(python, "import sys; print(sys.version_info[:2])") == "(3, 13)"
    # this takopi, editable from the checkout, never the reference one from PyPI
    origin = in_env(python, "import takopi; print(takopi.__version__, takopi.__file__)")
    assert origin == f"{takopi.__version__} {takopi.__file__}", origin
    raw = config(cli)
    assert raw["transport"] == "telegram" and raw["plugins"]["other"] == {"key": 1}

    listed = cli.ok("list")
    assert "takopi-envtest 0.1.0  python 3.13." in listed, listed
    assert "command envtest" in listed and "warnings" not in listed, listed
    # the reference listing shows the plugin under its environment's interpreter
    reference = cli.ok()
    assert f"  envtest (takopi-envtest) [python: {python}]" in reference, reference
    loaded = cli.ok("--load")
    assert f"envtest (takopi-envtest) [python: {python}] loaded" in loaded, loaded

    removed = cli.ok("remove", "takopi-envtest")
    assert "removed takopi-envtest 0.1.0" in removed
    assert config(cli) == tomllib.loads(BASE_CONFIG)
    assert cli.env_dirs() == []
    assert "no managed plugin environments" in cli.ok("list")


def test_refusals_leave_config_and_existing_env_untouched(cli: PluginEnvCli, wheels: Path) -> None:
    good = build_plugin_wheel(wheels, "takopi-envtest", "0.1.0", commands=["envtest"])
    cli.config.write_text(BASE_CONFIG)
    cli.ok("install", str(good), "--python", "3.12")
    before = cli.config.read_text()
    envs_before = cli.env_dirs()
    store_before = cli.store_entries()
    manifest_before = (envs_before[0] / "takopi-plugin-env.json").read_text()

    def unchanged() -> None:
        assert cli.config.read_text() == before
        assert cli.env_dirs() == envs_before
        assert cli.store_entries() == store_before
        assert (envs_before[0] / "takopi-plugin-env.json").read_text() == manifest_before

    future = build_plugin_wheel(
        wheels / "f", "takopi-future", "1.0", commands=["future"], requires_python=">=3.99"
    )
    err = cli.fails("install", str(future))
    assert "takopi-future 1.0 requires Python >=3.99, and no installed interpreter" in err, err
    assert "3.13." in err and "--python 3.13 --ignore-requires-python" in err, err
    unchanged()

    err = cli.fails("install", str(future), "--python", "3.12")
    assert "--python 3.12 is Python 3.12." in err and "--ignore-requires-python" in err, err
    unchanged()

    newer_takopi = build_plugin_wheel(
        wheels / "t",
        "takopi-needs-newer",
        "1.0",
        commands=["newer"],
        requires_dist=["takopi>=0.23"],
    )
    err = cli.fails("install", str(newer_takopi))
    assert f"requires takopi>=0.23, but this takopi is {takopi.__version__}" in err, err
    unchanged()

    # partial install: venv and takopi are in, the plugin's dependency does not exist
    missing_dep = build_plugin_wheel(
        wheels / "m",
        "takopi-missing-dep",
        "1.0",
        commands=["missing"],
        requires_dist=["takopi-plugin-envs-test-no-such-dist-3f9a>=1"],
    )
    err = cli.fails("install", str(missing_dep))
    assert "takopi-plugin-envs-test-no-such-dist-3f9a" in err, err
    unchanged()

    # PEP 695 does not parse on 3.11: the load check catches it and nothing is switched
    pep695 = build_plugin_wheel(
        wheels / "p", "takopi-pep695", "1.0", commands=["pepcmd"], pep695=True
    )
    err = cli.fails("install", str(pep695), "--python", "3.11")
    assert "takopi-pep695 1.0 does not load under this Python" in err, err
    assert "SyntaxError" in err, err
    unchanged()

    # same plugin id from another distribution
    clash = build_plugin_wheel(wheels / "c", "takopi-clash", "1.0", commands=["envtest"])
    err = cli.fails("install", str(clash))
    assert "plugin id 'envtest' is already provided by takopi-envtest" in err, err
    reserved = build_plugin_wheel(wheels / "r", "takopi-reserved", "1.0", commands=["model"])
    err = cli.fails("install", str(reserved))
    assert "plugin id 'model' is reserved" in err, err
    unchanged()

    err = cli.fails("remove", "takopi-not-installed")
    assert "takopi-not-installed is not a managed plugin environment" in err, err
    cli.config.write_text(before + "[broken\n")
    err = cli.fails("install", str(pep695))
    assert "Malformed TOML" in err and "nothing was changed" in err, err
    assert cli.env_dirs() == envs_before


def test_fetch_errors_name_the_cause(cli: PluginEnvCli, wheels: Path) -> None:
    cli.config.write_text(BASE_CONFIG)
    err = cli.fails("install", "takopi-envtest==9.9", env=local_index_env(wheels))
    assert "cannot fetch takopi-envtest==9.9: no such distribution or version" in err, err
    offline = {
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "3",
    }
    err = cli.fails("install", "takopi-envtest", env=offline)
    assert "the package index could not be reached" in err, err
    err = cli.fails("install", "not a requirement!")
    assert "is not a valid requirement" in err, err
    assert cli.config.read_text() == BASE_CONFIG
    assert cli.store_entries() in ([], [".lock"])


def test_upgrade_switches_env_and_config_and_allowlist_round_trip(
    cli: PluginEnvCli, wheels: Path
) -> None:
    build_plugin_wheel(wheels, "takopi-envtest", "0.1.0", commands=["envtest"])
    cli.config.write_text('[plugins]\nenabled = ["takopi-other"]\n')
    index = local_index_env(wheels)
    cli.ok("install", "takopi-envtest==0.1.0", "--python", "3.12", env=index)
    raw = config(cli)
    assert raw["plugins"]["enabled"] == ["takopi-other", "takopi-envtest"]
    old_python = env_python(cli, "envtest")

    # 0.2.0 adds a second command; upgrade (no version named) takes the newest
    build_plugin_wheel(wheels, "takopi-envtest", "0.2.0", commands=["envtest", "envtest2"])
    out = cli.ok("upgrade", env=index)
    assert "installed takopi-envtest 0.1.0 -> 0.2.0" in out, out
    raw = config(cli)
    new_python = env_python(cli, "envtest")
    assert new_python != old_python and not old_python.exists()
    assert raw["plugins"]["envtest2"]["python"] == str(new_python)
    assert in_env(new_python, "import sys; print(sys.version_info[:2])") == "(3, 12)"  # kept
    manifest = json.loads((new_python.parent.parent / "takopi-plugin-env.json").read_text())
    assert manifest["version"] == "0.2.0" and manifest["enabled_added"] is True

    # a hand-edited key survives removal; everything takopi wrote goes
    raw["plugins"]["envtest2"]["python"] = "/opt/elsewhere/bin/python"
    cli.config.write_text(tomli_w.dumps(raw))
    listed = cli.ok("list")
    assert "[plugins.envtest2] python points elsewhere (/opt/elsewhere/bin/python)" in listed
    out = cli.ok("remove", "takopi-envtest")
    assert "kept [plugins.envtest2] python = '/opt/elsewhere/bin/python'" in out, out
    assert config(cli) == {
        "plugins": {
            "enabled": ["takopi-other"],
            "envtest2": {"python": "/opt/elsewhere/bin/python"},
        }
    }
    assert cli.env_dirs() == []


def test_pip_installer_fallback(cli: PluginEnvCli, wheels: Path) -> None:
    wheel = build_plugin_wheel(
        wheels, "takopi-envtest", "0.1.0", commands=["envtest"], requires_python=">=3.14"
    )
    out = cli.ok(
        "install",
        str(wheel),
        "--installer",
        "pip",
        "--python",
        "3.13",
        "--ignore-requires-python",
    )
    assert "with pip" in out and "anyway (--ignore-requires-python)" in out, out
    python = env_python(cli, "envtest")
    assert in_env(python, "import takopi, sys; print(takopi.__file__, sys.version_info[:2])") == (
        f"{takopi.__file__} (3, 13)"
    )
    assert "pip" in in_env(python, "import pip; print(pip.__name__)")  # a pip-made venv
