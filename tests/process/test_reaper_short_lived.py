"""The reaper kills the supervisor's stray children but never the short-lived ones it waits
for itself (the config check): a sweep during a reload once killed the check (-9)."""

from __future__ import annotations

import pytest

from tests.support.processes import fresh_python

pytestmark = [pytest.mark.process, pytest.mark.timeout(60)]

CODE = """
import subprocess, sys, threading, time
from takopi.supervisor.reaper import Reaper
from takopi.supervisor.short_lived import SHORT_LIVED

stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
done = {}
def check():
    done["result"] = SHORT_LIVED.run(
        [sys.executable, "-c", "import time; time.sleep(1); print('checked')"], timeout=30
    )
worker = threading.Thread(target=check)
worker.start()
while True:
    with SHORT_LIVED.held() as running:
        if running:
            break
    time.sleep(0.01)
killed = Reaper(lambda: set()).sweep()
worker.join()
stray.wait(10)  # the stray sleeps 30 s: only the sweep ends it this soon (it may reap it too)
print(killed, done["result"].returncode, done["result"].stdout.decode().strip())
with SHORT_LIVED.held() as running:
    print(sorted(running))
"""


def test_a_sweep_kills_strays_but_not_a_running_short_lived_child() -> None:
    lines = fresh_python(CODE)
    assert lines[-2:] == ["1 0 checked", "[]"]
    assert any("reaper.killed_orphans" in line for line in lines[:-2])
