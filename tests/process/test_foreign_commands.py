"""A command plugin installed only in another venv (``[plugins.<id>] python = ...``) is
listed by ``list_command_ids()`` inside the transport worker and dispatched from it to a
command worker running under that venv's interpreter.

The venv is made in the test's directory without pip: a ``.pth`` file gives it this venv's
site-packages (takopi's dependencies) plus a directory holding the command's distribution,
which the transport's interpreter cannot see.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FOREIGN_MODULE = """
import sys

from takopi.api import CommandContext, CommandResult


class Foreign:
    id = "foreigncmd"
    description = "lives only in another venv"

    async def handle(self, ctx: CommandContext) -> CommandResult | None:
        await ctx.executor.send(f"foreign via executor: {ctx.args_text}")
        return CommandResult(text=f"foreign: {ctx.args_text} prefix={sys.prefix}")


FOREIGN = Foreign()
"""


def make_foreign_venv(base: Path) -> Path:
    """A venv whose only extra is the ``foreigncmd`` command plugin; returns its python."""
    site_dir = base / "foreign-site"
    dist_info = site_dir / "takopi_foreigncmd-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (site_dir / "takopi_foreigncmd.py").write_text(FOREIGN_MODULE)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: takopi-foreigncmd\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[takopi.command_backends]\nforeigncmd = takopi_foreigncmd:FOREIGN\n"
    )
    venv = base / "foreign-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "takopi_foreign.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n{site_dir}\n"
    )
    return python


def test_command_only_in_another_venv_is_listed_and_dispatched(
    supervisor: SupervisorHarness,
) -> None:
    python = make_foreign_venv(supervisor.base)
    supervisor.write_config(extra=f'[plugins.foreigncmd]\npython = "{python}"\n')
    supervisor.start()

    supervisor.send("", op="list_commands")
    listed = wait_until(lambda: supervisor.outbox_ops("list_commands"))[0]["ids"]
    assert "foreigncmd" in listed, listed
    assert "echo" in listed  # this interpreter's commands are still there

    supervisor.send("/foreigncmd hello there", op="command")
    result = wait_until(lambda: supervisor.outbox_ops("command_result"), timeout=30)[0]
    assert result["text"] == f"foreign: hello there prefix={python.parent.parent}"
    sends = [r["text"] for r in supervisor.outbox_ops("send")]
    assert "foreign via executor: hello there" in sends

    worker = supervisor.worker("command:foreigncmd")
    assert worker["state"] == "ready" and worker["python_executable"] == str(python)
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
