"""Messages a transport took but never ran (takopi.supervisor.intake): what is owed an
``interrupted`` reply once the transport worker died, and what is not."""

from __future__ import annotations

import pytest

from takopi.config import ConfigError
from takopi.supervisor.intake import ORPHAN_GRACE, Intakes, intake_key
from takopi.supervisor.options import SupervisorOptions


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def msg(message_id: int, channel_id: int = 7) -> dict[str, int]:
    return {"channel_id": channel_id, "message_id": message_id}


def test_settled_intakes_are_not_orphaned() -> None:
    intakes = Intakes(Clock())
    intakes.accept("telegram", msg(1), seq=10)
    intakes.accept("telegram", msg(2), seq=11)
    intakes.settle("telegram", msg(1))  # a run began, or its handling is over
    assert intakes.count("telegram") == 1
    assert intakes.orphan("telegram", grace=5) == 1
    assert intakes.orphan("telegram", grace=5) == 0  # nothing open any more


def test_orphan_taken_again_by_the_successor_is_not_owed() -> None:
    clock = Clock()
    intakes = Intakes(clock)
    intakes.accept("telegram", msg(1), seq=10)
    intakes.orphan("telegram", grace=5)
    # The update was not confirmed: the chat service hands it to the successor again.
    assert intakes.accept("telegram", msg(1), seq=10) == []
    intakes.settle("telegram", msg(1))
    clock.now += 10
    assert intakes.expired("telegram") == []
    assert intakes.count() == 0


def test_orphan_passed_over_by_a_later_update_is_owed_at_once() -> None:
    intakes = Intakes(Clock())
    intakes.accept("telegram", msg(1), seq=10)
    intakes.accept("telegram", msg(2), seq=12)
    intakes.orphan("telegram", grace=60)
    # The successor's first update is 11: 10 was confirmed and is lost, 12 may still come.
    assert intakes.accept("telegram", msg(3), seq=11) == [msg(1)]
    assert intakes.count("telegram") == 2  # orphan 12 and the open 11


def test_orphans_expire_after_the_grace_only() -> None:
    clock = Clock()
    intakes = Intakes(clock)
    intakes.accept("telegram", msg(1))
    intakes.accept("slack", msg(1))
    intakes.orphan("telegram", grace=5)
    clock.now += 4.9
    assert intakes.expired("telegram") == []
    clock.now += 0.2
    assert intakes.expired("telegram") == [msg(1)]
    assert intakes.expired("telegram") == []  # owed once
    assert intakes.count("slack") == 1  # another transport is unaffected


def test_messages_without_an_id_are_not_tracked() -> None:
    intakes = Intakes(Clock())
    assert intake_key({"channel_id": 1}) is None
    assert intakes.accept("telegram", {"channel_id": 1}, seq=3) == []
    assert intakes.count() == 0


def test_a_successor_gives_the_orphans_their_grace_again() -> None:
    """The grace once ran from the death: a restart backoff could use it up, so the orphan
    got 'interrupted' and the successor, offered the update again, answered it too."""
    clock = Clock()
    intakes = Intakes(clock)
    intakes.accept("telegram", msg(1), seq=10)
    intakes.orphan("telegram", grace=15)
    clock.now += 14  # the successor comes up late (backoff)
    assert intakes.regrace("telegram", grace=15) == 1
    clock.now += 2  # past the first deadline
    assert intakes.expired("telegram") == []
    clock.now += 14
    assert intakes.expired("telegram") == [msg(1)]
    assert intakes.regrace("telegram", grace=15) == 0


def test_a_clean_stop_drains_open_intakes_and_orphans() -> None:
    """At a clean stop nobody is left to take anything again: all is owed, once."""
    intakes = Intakes(Clock())
    intakes.accept("telegram", msg(1), seq=10)
    intakes.orphan("telegram", grace=5)  # a dead worker's, still in its grace
    intakes.accept("telegram", msg(2))
    intakes.accept("console", msg(3, channel_id=8))
    intakes.settle("telegram", msg(2))
    intakes.accept("telegram", msg(4))
    drained = intakes.drain()
    assert drained == {"telegram": [msg(4), msg(1)], "console": [msg(3, channel_id=8)]}
    assert intakes.count() == 0
    assert intakes.drain() == {}


def test_an_update_passed_over_without_opening_it_still_owes_earlier_orphans() -> None:
    """A re-offered message answered already is not opened again, but its ``seq`` still
    tells that the orphans before it are lost."""
    intakes = Intakes(Clock())
    intakes.accept("telegram", msg(1), seq=10)
    intakes.accept("telegram", msg(2), seq=12)
    intakes.orphan("telegram", grace=60)
    assert intakes.passed("telegram", 11) == [msg(1)]
    assert intakes.passed("telegram", None) == []
    assert intakes.count("telegram") == 1  # orphan 12, nothing opened


def test_the_orphan_grace_is_a_supervisor_setting() -> None:
    options = SupervisorOptions()
    assert options.orphan_grace == ORPHAN_GRACE
    options.apply_table({"orphan_grace": 2})
    assert options.orphan_grace == 2.0
    for bad in (0, -1, True, "15"):
        with pytest.raises(ConfigError, match="orphan_grace"):
            SupervisorOptions().apply_table({"orphan_grace": bad})
