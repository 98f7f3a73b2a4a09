"""Plugin discovery with real fake distributions on sys.path (core-config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from takopi.config import ConfigError
from takopi.engines import get_backend, list_backends
from takopi.plugins import (
    COMMAND_GROUP,
    ENGINE_GROUP,
    TRANSPORT_GROUP,
    PluginLoadFailed,
    PluginNotFoundError,
    canonicalize_name,
    get_load_errors,
    list_entrypoints,
    list_ids,
    load_entrypoint,
)
from takopi.transports import TransportBackend, get_transport, list_transports

ENGINE_MODULE = """
from takopi.backends import EngineBackend
from takopi.runners.mock import ScriptRunner

def build(config, config_path):
    return ScriptRunner([], engine={id!r})

BACKEND = EngineBackend(id={id!r}, build_runner=build, cli_cmd="true")
"""

BOOM_MODULE = """
from pathlib import Path
with open({marker!r}, "a") as fh:
    fh.write("imported\\n")
raise RuntimeError("plugin exploded on import")
"""


def _errors_for(name: str) -> list[str]:
    return [e.error for e in get_load_errors() if e.name == name]


def test_canonical_distribution_names() -> None:
    assert canonicalize_name("Takopi_Slack.Plugin") == "takopi-slack-plugin"
    assert canonicalize_name("a--b__c..d") == "a-b-c-d"


def test_listing_does_not_import_plugin_code(fake_dists: Any, tmp_path: Path) -> None:
    marker = tmp_path / "imports.log"
    fake_dists.add(
        "takopi-boom",
        {ENGINE_GROUP: {"boom": "cc_boom_mod:BACKEND"}},
        {"cc_boom_mod": BOOM_MODULE.format(marker=str(marker))},
    )
    assert "boom" in list_backends()
    eps = {ep.name: ep for ep in list_entrypoints(ENGINE_GROUP)}
    assert eps["boom"].distribution == "takopi-boom"
    assert eps["boom"].value == "cc_boom_mod:BACKEND"
    assert not marker.exists(), "listing imported the plugin module"


def test_load_error_is_recorded_and_cached(fake_dists: Any, tmp_path: Path) -> None:
    marker = tmp_path / "imports.log"
    fake_dists.add(
        "takopi-boom",
        {ENGINE_GROUP: {"boom": "cc_boom2_mod:BACKEND"}},
        {"cc_boom2_mod": BOOM_MODULE.format(marker=str(marker))},
    )
    with pytest.raises(PluginLoadFailed) as info:
        load_entrypoint(ENGINE_GROUP, "boom")
    err = info.value.load_error
    assert (err.group, err.name, err.value, err.distribution) == (
        ENGINE_GROUP,
        "boom",
        "cc_boom2_mod:BACKEND",
        "takopi-boom",
    )
    assert err.error == "RuntimeError: plugin exploded on import"
    assert err in get_load_errors()
    with pytest.raises(PluginLoadFailed):
        load_entrypoint(ENGINE_GROUP, "boom")
    assert marker.read_text().count("imported") == 1, "a failed plugin was imported twice"
    with pytest.raises(ConfigError, match=r"Failed to load engine 'boom': RuntimeError"):
        get_backend("boom")


def test_successful_load_is_cached(fake_dists: Any) -> None:
    fake_dists.add(
        "takopi-acme",
        {ENGINE_GROUP: {"acme": "cc_acme_mod:BACKEND"}},
        {"cc_acme_mod": ENGINE_MODULE.format(id="acme")},
    )
    first = get_backend("acme")
    assert first.id == "acme"
    assert first.cli_cmd == "true"
    assert get_backend("acme") is first


def test_allowlist_filters_by_canonical_distribution(fake_dists: Any) -> None:
    fake_dists.add(
        "Takopi_Acme.Engine",
        {ENGINE_GROUP: {"acme": "cc_acme2_mod:BACKEND"}},
        {"cc_acme2_mod": ENGINE_MODULE.format(id="acme")},
    )
    fake_dists.add(
        "other-engine",
        {ENGINE_GROUP: {"other": "cc_other_mod:BACKEND"}},
        {"cc_other_mod": ENGINE_MODULE.format(id="other")},
    )
    assert {"acme", "other"} <= set(list_backends())
    allowed = list_backends(allowlist=["takopi-acme-engine"])
    assert "acme" in allowed
    assert "other" not in allowed
    # takopi's own engines are never filtered out by an allowlist of third-party plugins
    assert "codex" in allowed
    with pytest.raises(PluginNotFoundError):
        load_entrypoint(ENGINE_GROUP, "other", allowlist=["takopi-acme-engine"])
    assert list_backends(allowlist=[]) == list_backends()


def test_reserved_and_invalid_ids_are_rejected(fake_dists: Any) -> None:
    fake_dists.add(
        "takopi-bad-ids",
        {
            ENGINE_GROUP: {
                "config": "cc_x:A",
                "cancel": "cc_x:B",
                "Bad-Name": "cc_x:C",
                "x" * 33: "cc_x:D",
                "good_one": "cc_x:E",
            },
            COMMAND_GROUP: {"ctx": "cc_x:F", "run": "cc_x:G", "init": "cc_x:H"},
        },
    )
    engines = list_backends()
    assert "good_one" in engines
    for bad in ("config", "cancel", "Bad-Name", "x" * 33):
        assert bad not in engines
    assert _errors_for("config") == ["reserved plugin id 'config'"]
    assert _errors_for("cancel") == ["reserved plugin id 'cancel'"]
    assert _errors_for("Bad-Name") == ["invalid plugin id 'Bad-Name'; must match ^[a-z0-9_]{1,32}$"]
    from takopi.ids import RESERVED_COMMAND_IDS

    commands = list_ids(COMMAND_GROUP, reserved_ids=RESERVED_COMMAND_IDS)
    assert "run" in commands  # `run` is not reserved
    assert "ctx" not in commands
    assert "init" not in commands


def test_duplicate_ids_reject_every_copy(fake_dists: Any) -> None:
    fake_dists.add("dist-b", {ENGINE_GROUP: {"dup": "cc_b:BACKEND"}})
    fake_dists.add("dist-a", {ENGINE_GROUP: {"dup": "cc_a:BACKEND"}})
    # a third-party dist shadowing a built-in id knocks out both copies as well
    fake_dists.add("dist-c", {ENGINE_GROUP: {"codex": "cc_c:BACKEND"}})
    engines = list_backends()
    assert "dup" not in engines
    assert "codex" not in engines
    assert _errors_for("dup") == [
        "duplicate plugin id 'dup' from dist-a, dist-b",
        "duplicate plugin id 'dup' from dist-a, dist-b",
    ]
    assert {e.distribution for e in get_load_errors() if e.name == "dup"} == {"dist-a", "dist-b"}
    assert _errors_for("codex") == ["duplicate plugin id 'codex' from dist-c, takopi"] * 2


def test_same_id_in_engine_and_command_groups_is_fine(fake_dists: Any) -> None:
    fake_dists.add(
        "takopi-ralph",
        {ENGINE_GROUP: {"ralph": "cc_r:ENGINE"}, COMMAND_GROUP: {"ralph": "cc_r:COMMAND"}},
    )
    assert "ralph" in list_backends()
    assert "ralph" in list_ids(COMMAND_GROUP)
    assert not _errors_for("ralph")


def test_id_mismatch_is_a_load_error(fake_dists: Any) -> None:
    fake_dists.add(
        "takopi-liar",
        {ENGINE_GROUP: {"liar": "cc_liar_mod:BACKEND"}},
        {"cc_liar_mod": ENGINE_MODULE.format(id="someone_else")},
    )
    with pytest.raises(PluginLoadFailed) as info:
        load_entrypoint(ENGINE_GROUP, "liar")
    assert info.value.load_error.error == (
        "plugin id mismatch: entry point 'liar' loaded an object with id 'someone_else'"
    )
    assert _errors_for("liar") == [info.value.load_error.error]


def test_engine_registry_rejects_wrong_object_type(fake_dists: Any) -> None:
    fake_dists.add(
        "takopi-notengine",
        {ENGINE_GROUP: {"notengine": "cc_ne_mod:BACKEND"}},
        {"cc_ne_mod": "class B:\n    id = 'notengine'\n\nBACKEND = B()\n"},
    )
    with pytest.raises(ConfigError, match="object is not an EngineBackend"):
        get_backend("notengine")
    with pytest.raises(ConfigError, match=r"Unknown engine 'nope'\. Available: .*codex"):
        get_backend("nope")


TRANSPORT_MODULE = """
from takopi.transports import SetupResult, TransportBackend

class Backend(TransportBackend):
    id = "faketr"
    description = "a fake transport"

    def check_setup(self, engine_backend, *, transport_override=None):
        return SetupResult(issues=[], config_path=None)

    async def interactive_setup(self, *, force):
        return False

    def lock_token(self, *, transport_config, _config_path):
        return transport_config.get("token")

    def build_and_run(self, *, transport_config, config_path, runtime, final_notify,
                      default_engine_override):
        return None

BACKEND = Backend()

class Half:
    id = "halftr"
    description = "missing methods"

HALF = Half()
"""


def test_transport_registry_with_protocol_subclass(fake_dists: Any) -> None:
    fake_dists.add(
        "takopi-transport-fake",
        {TRANSPORT_GROUP: {"faketr": "cc_tr_mod:BACKEND", "halftr": "cc_tr_mod:HALF"}},
        {"cc_tr_mod": TRANSPORT_MODULE},
    )
    assert {"faketr", "halftr", "telegram"} <= set(list_transports())
    backend: TransportBackend = get_transport("faketr")
    assert backend.description == "a fake transport"
    token = backend.lock_token(transport_config={"token": "t"}, _config_path=Path("x"))
    assert token == "t"
    result = backend.check_setup(None)  # type: ignore[arg-type]
    assert result.ok and result.config_path is None
    with pytest.raises(ConfigError, match=r"missing check_setup, interactive_setup"):
        get_transport("halftr")
    with pytest.raises(ConfigError, match=r"Unknown transport 'zzz'\. Available: "):
        get_transport("zzz")
