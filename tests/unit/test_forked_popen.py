"""ForkedPopen: a Popen for a child made by os.fork() polls, waits and is signalled like one."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from takopi.supervisor.early import ForkedPopen

pytestmark = pytest.mark.timeout(30)


def _fork(code: int, *, sleep: float = 0.0) -> int:
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, just sleep and leave
        time.sleep(sleep)
        os._exit(code)
    return pid


def test_wait_and_poll_give_the_exit_code() -> None:
    popen = ForkedPopen(_fork(7), ["child"])
    assert popen.wait(10) == 7
    assert popen.poll() == 7
    assert popen.returncode == 7
    assert popen.args == ["child"]


def test_a_running_child_polls_none_times_out_then_dies_by_signal() -> None:
    popen = ForkedPopen(_fork(0, sleep=30), ["child"])
    assert popen.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        popen.wait(0.05)
    popen.terminate()
    assert popen.wait(10) == -signal.SIGTERM
    popen.kill()  # a no-op once reaped, as for a spawned child
    assert popen.returncode == -signal.SIGTERM
