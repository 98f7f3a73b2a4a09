"""Fault injection for process tests, loaded through PYTHONPATH by every Python process the
test's supervisor starts: in the worker fork server only (the process named ``tk-zygote``,
spawned or forked from the supervisor after this ran), while the file named by
``PROCTEST_SLOW_ZYGOTE`` exists, the answer carrying a forked worker's pid is sent
``PROCTEST_SLOW_ZYGOTE_DELAY`` seconds late (a starved or descheduled fork server). The worker
itself is already running and connects meanwhile."""

import os

_flag = os.environ.get("PROCTEST_SLOW_ZYGOTE")
if _flag:
    import socket
    import time

    _delay = float(os.environ.get("PROCTEST_SLOW_ZYGOTE_DELAY") or 2.0)
    _send = socket.socket.send

    def _is_zygote() -> bool:
        try:
            with open("/proc/self/comm") as comm:
                return comm.read().strip() == "tk-zygote"
        except OSError:
            return False

    def _late_send(self, data, *args):  # type: ignore[no-untyped-def]
        if b'"pid"' in bytes(data) and os.path.exists(_flag) and _is_zygote():
            time.sleep(_delay)
        return _send(self, data, *args)

    socket.socket.send = _late_send  # type: ignore[method-assign]
