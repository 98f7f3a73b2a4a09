"""``clirec``: a transport driven by files, recording what it sends.

``[transports.clirec] dir = "..."``. The test drops ``inbox/<n>.json`` files
``{"channel_id", "message_id", "text"}``; every send/edit/delete is appended to
``outbox.jsonl``; the first line is ``{"op": "ready"}``.

The code is the process tests' recording transport: ``_recording.py`` is a symlink to
``tests/process/plugin_dist/takopi_proctest/recorder.py``.
"""

from __future__ import annotations

from ._recording import Recorder

RECORDER = Recorder("clirec", inbox="inbox", outbox="outbox.jsonl")
