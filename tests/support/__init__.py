"""Helpers shared by the test areas: one way to wait (:mod:`.waiting`), one real supervisor
harness (:mod:`.supervisor`), leftover-process checks (:mod:`.processes`) and a console
session driver (:mod:`.console`). No fixtures here: each area's conftest wires them."""
