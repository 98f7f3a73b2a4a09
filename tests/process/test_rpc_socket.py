"""Garbage, oversized frames, a wrong secret and identity spoofing on the supervisor's RPC
socket: each refused or dropped, the supervisor and its workers unaffected."""

from __future__ import annotations

import os

import anyio
import pytest
import zmq

from takopi.rpc import CallTimeout, DealerEndpoint, HandshakeRefused
from takopi.supervisor.paths import resolve_paths
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]


def test_bad_input_on_rpc_socket_is_refused(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra="[supervisor]\nmax_frame_bytes = 65536\n")
    supervisor.start()
    supervisor.warm_engine()  # a live engine worker whose identity the test spoofs
    before = {w["name"]: w["pid"] for w in supervisor.control("status")["workers"]}
    address = resolve_paths(supervisor.config_path, create=False).rpc_address

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2000)  # make sure the frames leave before close
    sock.setsockopt(zmq.ROUTING_ID, b"intruder")
    sock.connect(address)
    sock.send(b"\x00\xff garbage that is not msgpack")
    sock.send_multipart([b"two", b"frames"])
    sock.send(b"x" * 200_000)  # oversized for max_frame_bytes = 64 KiB
    sock.close()
    ctx.term()
    wait_until(lambda: "rpc.frame" in supervisor.log_path.read_text())

    async def wrong_secret() -> str:
        try:
            await DealerEndpoint.connect(
                address,
                identity=b"engine:scripted:deadbeef",
                hello={"kind": "engine", "id": "scripted", "distribution": None, "secret": "nope"},
                timeout=5,
            )
        except HandshakeRefused as exc:
            return exc.message
        return "accepted?!"

    reason = anyio.run(wrong_secret, backend="asyncio")
    assert reason == "unknown identity"

    # Spoof the live engine worker's identity with a wrong secret: refused too.
    engine_identity = supervisor.worker("engine:scripted")["identity"].encode()

    async def spoof() -> str:
        try:
            await DealerEndpoint.connect(
                address,
                identity=engine_identity,
                hello={"kind": "engine", "id": "scripted", "secret": "guess", "pid": os.getpid()},
                timeout=5,
            )
        except HandshakeRefused as exc:
            return exc.message
        except CallTimeout:
            return "ignored"  # ZeroMQ drops a second connection claiming a live identity
        return "accepted?!"

    assert anyio.run(spoof, backend="asyncio") != "accepted?!"
    log = supervisor.log_path.read_text()
    assert "rpc.frame" in log  # dropped with a log line

    # Nothing restarted, everything still works.
    after = {w["name"]: w["pid"] for w in supervisor.control("status")["workers"]}
    assert after == before
    supervisor.send("after garbage answer=unaffected")
    final = wait_until(lambda: [f for f in supervisor.finals() if "unaffected" in f["text"]])[0]
    assert final["text"].startswith("done")
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
