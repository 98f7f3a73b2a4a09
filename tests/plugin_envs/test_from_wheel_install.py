"""A takopi installed from a wheel (not an editable checkout) puts *itself* into plugin
environments: a wheel repacked from its installed files, byte for byte, never the reference
takopi of PyPI. Its venv is made by uv and has no pip, so fetching goes through
a throwaway uv environment."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

import takopi
from takopi.plugin_envs.installers import find_uv
from tests.plugin_envs.conftest import PluginEnvCli, local_index_env, real_interpreter_prefix
from tests.plugin_envs.wheels import build_plugin_wheel

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def package_digest(site: Path) -> dict[str, str]:
    return {
        str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((site / "takopi").rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def test_wheel_installed_takopi_repacks_itself_into_the_plugin_env(
    cli: PluginEnvCli, wheels: Path, tmp_path: Path
) -> None:
    uv = find_uv()
    assert uv is not None
    venv = tmp_path / "installed-takopi"
    base = real_interpreter_prefix("3.11") / "bin" / "python3.11"
    run(uv, "venv", "--no-project", "--python", str(base), str(venv))
    run(uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(REPO))
    installed_site = site_packages(venv)
    direct = json.loads(next(installed_site.glob("takopi-*.dist-info/direct_url.json")).read_text())
    assert "editable" not in json.dumps(direct)  # a real wheel install

    build_plugin_wheel(wheels, "takopi-envtest", "0.1.0", commands=["envtest"])
    cli.config.write_text("")
    proc = subprocess.run(
        [
            str(venv / "bin" / "takopi"),
            "plugins",
            "install",
            "takopi-envtest==0.1.0",
            "--python",
            "3.13",
            "--config-path",
            str(cli.config),
        ],
        env={**cli.env, **local_index_env(wheels)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installed takopi-envtest 0.1.0 (Python 3.13." in proc.stdout

    env_dir = next(cli.envs_root.glob("takopi-envtest/0.1.0-*"))
    manifest = json.loads((env_dir / "takopi-plugin-env.json").read_text())
    assert manifest["takopi_source"].startswith("wheel rebuilt from "), manifest
    env_site = site_packages(env_dir)
    env_direct = json.loads(next(env_site.glob("takopi-*.dist-info/direct_url.json")).read_text())
    assert env_direct["url"].endswith(f"/takopi-{takopi.__version__}-py3-none-any.whl")
    # the same files as the running installation, and importable as this takopi
    assert package_digest(env_site) == package_digest(installed_site)
    repo_api = hashlib.sha256((REPO / "takopi" / "api.py").read_bytes()).hexdigest()
    assert package_digest(env_site)["takopi/api.py"] == repo_api
    version = run(
        str(env_dir / "bin" / "python"),
        "-I",  # not the checkout in the current directory
        "-c",
        "import takopi, takopi.worker, takopi.api; print(takopi.__version__, takopi.__file__)",
    ).split()
    assert version[0] == takopi.__version__
    assert Path(version[1]).is_relative_to(env_site)
    # console scripts were regenerated for the new venv
    assert (env_dir / "bin" / "takopi").exists()
