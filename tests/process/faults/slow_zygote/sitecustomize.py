"""Fault injection for process tests, loaded through PYTHONPATH by every Python process the
test's supervisor starts: in the worker fork server only, while the file named by
``PROCTEST_SLOW_ZYGOTE`` exists, the answer carrying a forked worker's pid is sent
``PROCTEST_SLOW_ZYGOTE_DELAY`` seconds late (a starved or descheduled fork server). The worker
itself is already running and connects meanwhile."""

import os
import sys

_flag = os.environ.get("PROCTEST_SLOW_ZYGOTE")
if _flag and "--zygote" in sys.argv:
    import socket
    import time

    _delay = float(os.environ.get("PROCTEST_SLOW_ZYGOTE_DELAY") or 2.0)
    _send = socket.socket.send

    def _late_send(self, data, *args):  # type: ignore[no-untyped-def]
        if b'"pid"' in bytes(data) and os.path.exists(_flag):
            time.sleep(_delay)
        return _send(self, data, *args)

    socket.socket.send = _late_send  # type: ignore[method-assign]
