"""What differs per kind of worker: engine, transport, command.

A :class:`~takopi.supervisor.watcher.WorkerKind` tells a
:class:`~takopi.supervisor.watcher.Watcher` how to bring its worker up (``load``), what the
supervisor serves to it (``register``) and what its readiness, exit or quarantine means for the
rest of the supervisor. The watcher owns the lifecycle; the kind owns the meaning:

- :mod:`~takopi.supervisor.kinds.engine` — one worker per engine that can run (started on
  first use, retired when idle);
- :mod:`~takopi.supervisor.kinds.transport` — the chat transport(s), lockfile, setup check;
- :mod:`~takopi.supervisor.kinds.command` — command plugins, started on first use.
"""

from __future__ import annotations

from takopi.supervisor.watcher import WorkerKind

__all__ = ["WorkerKind"]
