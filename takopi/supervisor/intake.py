"""Messages a transport took from its chat but has not turned into a run (or otherwise
finished handling) yet.

A transport confirms an update to its chat service (Telegram: the next ``getUpdates``
offset) as soon as it has *taken* it; the run starts later (after routing and the progress
message, which a paced chat can delay by seconds). A transport worker killed in between used
to lose the message silently: no run, no reply. Now the transport reports each taken message
(``run.intake``) before confirming it and reports when its handling is over
(``run.intake_done``); a run beginning for the same chat message settles it too. Whatever is
still open when the transport worker exits is *orphaned*: the chat service may hand the same
message to the successor (an update taken but not confirmed yet), which then simply handles it.
An orphan becomes an ``interrupted`` delivery in the journal (sent by the successor replying
to the message: "send it again") once it is known to be lost — the successor took a later
update (``seq``) without it — or after the orphan grace (:data:`ORPHAN_GRACE` by default,
``[supervisor] orphan_grace``): every accepted message ends in exactly one terminal reply.

Held in the supervisor's memory: the supervisor outlives transport workers. A clean stop of
the supervisor (its transports stopped first, confirming what they took) owes every intake
still open or orphaned an ``interrupted`` reply at once (:meth:`Intakes.drain`), sent by the
next start's transport; when the supervisor dies (kill -9) the transport's chat service
re-offers unconfirmed updates only (confirmed ones are covered by the offline-backlog policy
of the next start).

None of this assumes the chat service was told the message was taken: it was not when a
transport was killed before its next poll, when the stop-time confirm failed (service
unreachable, 429), or when a successor polls only after the orphan grace. The journal knows
every message a run began for — an ``interrupted`` reply is such a run — for 48 h (Telegram
keeps an unconfirmed update 24 h at most; :meth:`~takopi.supervisor.journal.Journal.
already_answered`). When the chat service offers one again, ``run.intake`` answers
:data:`~takopi.protocol.runs.ALREADY_ANSWERED`; the transport then ignores it (no run, no
notice, no reply: the run's outcome, delivered or still pending, is its one reply) and its
next poll confirms it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from takopi.logging import get_logger

log = get_logger(__name__)

ORPHAN_GRACE = 15.0
"""How long a dead transport's open intakes wait to be taken again by its successor (the
default of ``[supervisor] orphan_grace``)."""
INTAKE_LOST_ERROR = (
    "interrupted: takopi restarted before this message was run; send it again to run it"
)


def intake_key(origin: dict[str, Any]) -> str | None:
    """``channel:message`` of a message's address (None if it has no message id)."""
    channel, message = origin.get("channel_id"), origin.get("message_id")
    if channel is None or message is None:
        return None
    return f"{channel}:{message}"


class Intakes:
    """Open intakes per transport id, keyed by ``channel:message``; and *orphans*: intakes of
    a transport worker that died, kept for a grace period because its chat service may hand
    the same message to the successor (an update taken but not yet confirmed)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._open: dict[str, dict[str, _Intake]] = {}
        self._orphans: dict[str, dict[str, _Intake]] = {}
        self._clock = clock

    def accept(
        self, transport: str, origin: dict[str, Any], seq: int | None = None
    ) -> list[dict[str, Any]]:
        """A transport took a message (before confirming it to its chat service). Returns
        orphans now known to be lost: the chat service moved past them (``seq``, e.g. the
        Telegram ``update_id``, is beyond theirs) without handing them out again."""
        key = intake_key(origin)
        if key is None:
            return []
        self._orphans.get(transport, {}).pop(key, None)  # taken again by the successor
        self._open.setdefault(transport, {})[key] = _Intake(dict(origin), seq, 0.0)
        return self.passed(transport, seq)

    def passed(self, transport: str, seq: int | None) -> list[dict[str, Any]]:
        """The transport took update ``seq`` (kept or not): orphans before it are lost
        (removed here and returned)."""
        if seq is None:
            return []
        orphans = self._orphans.get(transport, {})
        gone = [k for k, o in orphans.items() if o.seq is not None and o.seq < seq]
        return [orphans.pop(k).origin for k in gone]

    def settle(self, transport: str, origin: dict[str, Any]) -> None:
        """Its handling is over, or a run began for it: nothing is owed for it here."""
        key = intake_key(origin)
        if key is None:
            return
        for table in (self._open, self._orphans):
            entries = table.get(transport)
            if entries is not None:
                entries.pop(key, None)

    def orphan(self, transport: str, grace: float) -> int:
        """The transport worker is gone: its open intakes become orphans for ``grace``
        seconds; the number orphaned."""
        lost = self._open.pop(transport, {})
        deadline = self._clock() + grace
        orphans = self._orphans.setdefault(transport, {})
        for key, intake in lost.items():
            orphans[key] = _Intake(intake.origin, intake.seq, deadline)
        if lost:
            log.warning("intake.orphaned", transport=transport, messages=len(lost))
        return len(lost)

    def regrace(self, transport: str, grace: float) -> int:
        """A successor worker is up: the orphans get ``grace`` seconds from now to be taken
        again (a restart backoff may have used up the time given at the death); the number
        of orphans."""
        orphans = self._orphans.get(transport, {})
        deadline = self._clock() + grace
        for key, intake in orphans.items():
            orphans[key] = _Intake(intake.origin, intake.seq, max(intake.deadline, deadline))
        return len(orphans)

    def expired(self, transport: str) -> list[dict[str, Any]]:
        """Orphans whose grace is over (removed here): nobody took them again."""
        now = self._clock()
        orphans = self._orphans.get(transport, {})
        gone = [k for k, o in orphans.items() if o.deadline <= now]
        return [orphans.pop(k).origin for k in gone]

    def drain(self) -> dict[str, list[dict[str, Any]]]:
        """Every open intake and orphan, per transport (all removed here): at a clean stop
        nobody is left to take them again."""
        drained: dict[str, list[dict[str, Any]]] = {}
        for table in (self._open, self._orphans):
            for transport, entries in table.items():
                drained.setdefault(transport, []).extend(i.origin for i in entries.values())
            table.clear()
        return {t: origins for t, origins in drained.items() if origins}

    def count(self, transport: str | None = None) -> int:
        """Open intakes and orphans (of one transport, or all)."""
        tables = (self._open, self._orphans)
        if transport is not None:
            return sum(len(t.get(transport, {})) for t in tables)
        return sum(len(v) for t in tables for v in t.values())


@dataclass(frozen=True, slots=True)
class _Intake:
    origin: dict[str, Any]
    seq: int | None
    deadline: float


__all__ = ["INTAKE_LOST_ERROR", "ORPHAN_GRACE", "Intakes", "intake_key"]
