"""`takopi service install|uninstall|status` and the systemd user unit, checked with the real
`systemd-analyze verify` (installed by scripts/ci-system-deps.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from takopi.cli.service import UnitSpec, reference_unit, render_unit
from tests.cli.conftest import BIN, TAKOPI, run_cli

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"


def verify(unit: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze --user verify` in an isolated HOME/XDG_RUNTIME_DIR.

    The runtime dir is short (in /tmp, not under pytest's tmp_path): systemd also loads the
    distribution's user units, whose socket paths under it must fit a unix socket address
    (108 bytes), or their warnings would be mistaken for problems of our unit."""
    runtime = Path(tempfile.mkdtemp(prefix="xr-", dir="/tmp"))
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin"}
    try:
        return subprocess.run(
            [SYSTEMD_ANALYZE, "--user", "verify", str(unit)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> Path:
    """A `systemctl` on PATH that records its arguments (the test box has no user manager)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bindir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'if [ "$1" = "--version" ]; then echo "systemd ${FAKE_SYSTEMD_VERSION:-252} (252.1)"; fi\n'
        'if [ "$2" = "is-active" ]; then echo inactive; exit 3; fi\n'
        'if [ "$2" = "enable" ] && [ -n "$FAKE_SYSTEMCTL_FAIL" ]; then echo "no bus" >&2; exit 1; fi\n'
        "exit 0\n"
    )
    script.chmod(0o755)
    return bindir


@pytest.fixture
def svc_env(cli_env: dict[str, str], fake_systemctl: Path) -> dict[str, str]:
    return dict(cli_env, PATH=f"{fake_systemctl}{os.pathsep}{cli_env['PATH']}")


def systemctl_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def unit_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_install_writes_a_unit_systemd_accepts(
    tmp_path: Path, home: Path, svc_env: dict[str, str]
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_cli([TAKOPI, "service", "install"], svc_env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    unit = home / ".config" / "systemd" / "user" / "takopi.service"
    assert result.stdout.splitlines()[0] == "wrote ~/.config/systemd/user/takopi.service"
    lines = unit_lines(unit)
    for expected in (
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={BIN / 'takopi'}",
        f"ExecReload={BIN / 'takopictl'} reload",
        "Restart=on-failure",
        "WatchdogSec=30s",
        "KillMode=mixed",
        "RuntimeDirectory=takopi",
        "RuntimeDirectoryMode=0700",
        f"WorkingDirectory={workdir}",
        f"Environment=PATH={svc_env['PATH']}",
        "NoNewPrivileges=yes",
        "WantedBy=default.target",
    ):
        assert expected in lines
    # Hardening must not stop agent CLIs from using project dirs, /tmp or a JIT.
    text = unit.read_text()
    for forbidden in ("ProtectHome=", "PrivateTmp=", "MemoryDenyWriteExecute=", "ProtectSystem="):
        assert forbidden not in text
    assert "RestartSteps" not in lines[0:]  # systemd 252 does not know it
    checked = verify(unit, home)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""  # not even a warning
    assert "--user daemon-reload" in systemctl_calls(tmp_path)
    assert "systemctl --user enable --now takopi.service" in result.stdout


def test_install_with_config_transport_and_new_systemd(
    tmp_path: Path, home: Path, svc_env: dict[str, str]
) -> None:
    config = tmp_path / "my configs" / "takopi.toml"
    env = dict(svc_env, FAKE_SYSTEMD_VERSION="256")
    result = run_cli(
        [
            TAKOPI,
            "service",
            "install",
            "--name",
            "takopi-work",
            "--config",
            str(config),
            "--transport",
            "console",
            "--workdir",
            str(tmp_path),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    unit = home / ".config" / "systemd" / "user" / "takopi-work.service"
    lines = unit_lines(unit)
    assert f'ExecStart={BIN / "takopi"} --config "{config}" --transport console' in lines
    assert f'ExecReload={BIN / "takopictl"} --config "{config}" reload' in lines
    assert "RestartSteps=6" in lines and "RestartMaxDelaySec=2min" in lines


def test_install_enable_status_uninstall(
    tmp_path: Path, home: Path, svc_env: dict[str, str]
) -> None:
    unit = home / ".config" / "systemd" / "user" / "takopi.service"
    missing = run_cli([TAKOPI, "service", "status"], svc_env)
    assert missing.returncode == 1
    assert "(not installed)" in missing.stdout

    failing = run_cli(
        [TAKOPI, "service", "install", "--enable"], dict(svc_env, FAKE_SYSTEMCTL_FAIL="1")
    )
    assert failing.returncode == 1
    assert "enable --now takopi.service failed" in failing.stderr

    enabled = run_cli([TAKOPI, "service", "install", "--enable"], svc_env)
    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout.startswith("updated ~/.config/systemd/user/takopi.service")
    assert "--user enable --now takopi.service" in systemctl_calls(tmp_path)

    status = run_cli([TAKOPI, "service", "status"], svc_env)
    assert status.returncode == 0
    assert "installation: matches this takopi" in status.stdout
    assert "state: inactive" in status.stdout

    unit.write_text(unit.read_text().replace(str(BIN / "takopi"), "/old/venv/bin/takopi", 1))
    stale = run_cli([TAKOPI, "service", "status"], svc_env)
    assert "installation: differs from this takopi" in stale.stdout

    removed = run_cli([TAKOPI, "service", "uninstall"], svc_env)
    assert removed.returncode == 0
    assert removed.stdout.strip() == "removed ~/.config/systemd/user/takopi.service"
    assert not unit.exists()
    assert "--user disable --now takopi.service" in systemctl_calls(tmp_path)
    again = run_cli([TAKOPI, "service", "uninstall"], svc_env)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_install_without_systemctl_still_writes_the_unit(
    home: Path, cli_env: dict[str, str]
) -> None:
    env = dict(cli_env, PATH=f"{BIN}{os.pathsep}/nonexistent")
    result = run_cli([TAKOPI, "service", "install"], env)
    assert result.returncode == 0, result.stderr
    assert "run `systemctl --user daemon-reload`" in result.stdout
    assert (home / ".config" / "systemd" / "user" / "takopi.service").exists()


def _site_packages(python: Path) -> str:
    """The ``purelib`` directory of the installation ``python`` belongs to."""
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_fresh_installation_gets_its_own_exec_paths(tmp_path: Path, home: Path) -> None:
    """Another venv with takopi's console scripts: the unit points at *that* installation."""
    fresh = tmp_path / "fresh venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    python = fresh / "bin" / "python"
    site = _site_packages(python)
    deps = _site_packages(Path(sys.executable))
    Path(site, "takopi-under-test.pth").write_text(f"{REPO}\n{deps}\n")
    for name, module in (("takopi", "takopi.cli.main"), ("takopictl", "takopi.cli.ctl")):
        script = fresh / "bin" / name
        # A /bin/sh trampoline, as pip writes when the interpreter path has a space.
        script.write_text(
            f'#!/bin/sh\nexec "{python}" -c "import sys; from {module} import main; '
            f'sys.exit(main())" "$@"\n'
        )
        script.chmod(0o755)
    env = {"HOME": str(home), "PATH": f"{fresh / 'bin'}:/usr/bin:/bin"}
    result = run_cli([str(fresh / "bin" / "takopi"), "service", "install"], env, cwd=home)
    assert result.returncode == 0, result.stderr
    unit = home / ".config" / "systemd" / "user" / "takopi.service"
    lines = unit_lines(unit)
    assert f'ExecStart="{fresh}/bin/takopi"' in lines
    assert f'ExecReload="{fresh}/bin/takopictl" reload' in lines
    checked = verify(unit, home)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""


def test_escaping_survives_systemd(tmp_path: Path, home: Path) -> None:
    odd = tmp_path / "dir with space" / "100%"
    odd.mkdir(parents=True)
    exe = odd / "take$opi"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "odd.service"
    unit.write_text(
        render_unit(
            UnitSpec(
                exec_start=[str(exe), "--flag", 'quote"d', "a$b"],
                exec_reload=[str(exe), "reload"],
                working_directory=str(odd),
                path_env="/a b:/usr/bin",
            )
        )
    )
    text = unit.read_text()
    assert f'ExecStart="{tmp_path}/dir with space/100%%/take$opi" --flag "quote\\"d" a$$b' in text
    assert f"WorkingDirectory={tmp_path}/dir with space/100%%" in text
    assert 'Environment="PATH=/a b:/usr/bin"' in text
    checked = verify(unit, home)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""


def test_repository_unit_is_the_reference_rendering(home: Path) -> None:
    shipped = REPO / "systemd" / "takopi.service"
    assert shipped.read_text() == reference_unit()
    local_bin = home / ".local" / "bin"
    local_bin.mkdir(parents=True)
    for name in ("takopi", "takopictl"):
        (local_bin / name).write_text("#!/bin/sh\n")
        (local_bin / name).chmod(0o755)
    checked = verify(shipped, home)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""
    (local_bin / "takopictl").unlink()  # the check really looks at ExecReload's binary
    assert verify(shipped, home).returncode != 0


@pytest.mark.timeout(300)
def test_pip_installed_takopi_writes_a_unit_systemd_accepts(tmp_path: Path, home: Path) -> None:
    """The issue's "done when": takopi installed *with pip* into a fresh venv, then
    `takopi service install` produces a unit that `systemd-analyze verify` accepts.

    The wheel is built from this checkout and installed with pip (which writes the console
    scripts); its runtime dependencies come from the test venv's site-packages so the test
    needs no network.
    """
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    )
    (wheel,) = wheels.glob("takopi-*.whl")
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True, timeout=120)
    python = fresh / "bin" / "python"
    site = _site_packages(python)
    deps = _site_packages(Path(sys.executable))
    Path(site, "test-deps.pth").write_text(f"{deps}\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    installed = subprocess.run(
        [str(python), "-c", "import takopi, sys; print(takopi.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the checkout, which `-c` would put first on sys.path
    ).stdout.strip()
    assert installed.startswith(site), installed  # the wheel, not the checkout
    env = {"HOME": str(home), "PATH": f"{fresh / 'bin'}:/usr/bin:/bin"}
    result = run_cli([str(fresh / "bin" / "takopi"), "service", "install"], env, cwd=home)
    assert result.returncode == 0, result.stderr
    unit = home / ".config" / "systemd" / "user" / "takopi.service"
    lines = unit_lines(unit)
    assert f"ExecStart={fresh}/bin/takopi" in lines or f'ExecStart="{fresh}/bin/takopi"' in lines
    checked = verify(unit, home)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""
