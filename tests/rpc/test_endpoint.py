"""Endpoints: handshake decisions and hostile input on the ROUTER socket."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from structlog.testing import capture_logs

from takopi.rpc import (
    DealerEndpoint,
    HandshakeRefused,
    PeerGone,
    RouterEndpoint,
    ipc_address,
    make_runtime_dir,
    new_identity,
)
from takopi.rpc import envelope as env

from .conftest import SECRET, Pair, accept_secret, open_pair

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

HELLO = {"kind": "engine", "id": "x", "distribution": "takopi", "secret": SECRET}


class RawDealer:
    """A hand-driven DEALER socket that can send anything."""

    def __init__(self, address: str, identity: bytes) -> None:
        self.sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, identity)
        self.sock.connect(address)

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    async def recv(self, timeout: float = 5.0) -> list[Any] | None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                await asyncio.sleep(0.01)
                continue
            return env.unpack(frames[0])
        return None

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def raw_dealers() -> Iterator[list[RawDealer]]:
    made: list[RawDealer] = []
    yield made
    for d in made:
        d.close()


def raw(made: list[RawDealer], address: str, identity: bytes) -> RawDealer:
    d = RawDealer(address, identity)
    made.append(d)
    return d


async def still_serving(pair: Pair) -> None:
    pair.worker.register("echo", lambda x: x)
    assert await pair.sup.call("echo", "alive", timeout=5) == "alive"
    assert await pair.worker.ping(timeout=5) >= 0


async def test_wrong_secret_refused_with_reason(pair: Pair) -> None:
    with pytest.raises(HandshakeRefused, match="wrong secret"):
        await DealerEndpoint.connect(
            pair.address,
            identity=new_identity("engine", "evil"),
            hello={**HELLO, "secret": "guess"},
            timeout=5,
        )
    assert pair.endpoint.refused_count == 1
    assert len(pair.endpoint.peers) == 1
    await still_serving(pair)


async def test_protocol_version_mismatch_refused_by_endpoint(
    pair: Pair, raw_dealers: list[RawDealer]
) -> None:
    with pytest.raises(HandshakeRefused, match=r"protocol version mismatch.*speaks 99"):
        await DealerEndpoint.connect(
            pair.address,
            identity=new_identity("engine", "future"),
            hello={**HELLO, "protocol": 99},
            timeout=5,
        )
    # a frame whose envelope version is another one entirely
    future = raw(raw_dealers, pair.address, b"future-worker")
    other = env.PROTOCOL_VERSION + 1
    future.send(msgpack.packb([other, env.HELLO, {**HELLO, "protocol": other}]))
    answer = await future.recv()
    assert answer is not None and answer[1] == env.REFUSE
    assert "protocol version mismatch" in answer[2]
    await still_serving(pair)


async def test_authenticator_verdicts(runtime_dir: Path) -> None:
    async def auth(identity: bytes, hello: dict[str, Any]) -> Any:
        if hello["id"] == "boom":
            raise RuntimeError("db down")
        return {"config": {"model": "x"}}

    address = ipc_address(runtime_dir, "auth")
    endpoint = RouterEndpoint(address, authenticate=auth)
    pair = await open_pair(address, endpoint)
    try:
        assert pair.worker.info["config"] == {"model": "x"}
        assert pair.worker.info["pid"] == os.getpid()
        with pytest.raises(HandshakeRefused, match="internal error"):
            await DealerEndpoint.connect(
                address, identity=b"boom-1", hello={**HELLO, "id": "boom"}, timeout=5
            )
        await still_serving(pair)
    finally:
        await pair.worker.aclose()
        await endpoint.aclose()


async def test_garbage_frames_dropped_and_endpoint_keeps_serving(
    pair: Pair, raw_dealers: list[RawDealer]
) -> None:
    called: list[Any] = []
    pair.sup.register("steal", lambda: called.append(1))
    g = raw(raw_dealers, pair.address, b"garbage-1")
    g.send(b"\xc1\xc1 not msgpack at all")
    g.send(b"")
    g.send(msgpack.packb({"not": "an envelope"}))
    g.send(b"a", b"b", b"c")  # multipart
    g.send(msgpack.packb([env.PROTOCOL_VERSION, 200, "unknown kind"]))
    # a well-formed request from an identity that never said HELLO: refused
    body = msgpack.packb([[], {}])
    g.send(env.pack(env.REQUEST, 1, None, "steal", body))
    answer = await g.recv()
    assert answer is not None and answer[1] == env.REFUSE
    assert "HELLO" in answer[2]
    await still_serving(pair)
    assert called == []
    assert pair.endpoint.dropped_count >= 5


async def test_bye_from_unknown_identity_is_counted_and_logged(
    pair: Pair, raw_dealers: list[RawDealer]
) -> None:
    # Minimal example found by tests/fuzz/test_rpc_frames.py: a bare [version, BYE] from a
    # connection that never said HELLO was ignored without a trace.
    dropped = pair.endpoint.dropped_count
    stranger = raw(raw_dealers, pair.address, b"stranger")
    with capture_logs() as logs:
        stranger.send(msgpack.packb([env.PROTOCOL_VERSION, env.BYE]))
        await still_serving(pair)  # serves on; and the BYE was read by now (same loop)
        for _ in range(100):
            if pair.endpoint.dropped_count > dropped:
                break
            await asyncio.sleep(0.01)
    assert pair.endpoint.dropped_count == dropped + 1
    assert [e["event"] for e in logs if e["event"].startswith("rpc.frame")] == [
        "rpc.frame.bye_from_unknown"
    ]
    assert pair.endpoint.peer(b"stranger") is None


async def test_garbage_from_established_peer_is_dropped(pair: Pair) -> None:
    pair.worker._link.send_raw(b"\xc1 junk")
    pair.worker._link.send_raw(
        msgpack.packb([env.PROTOCOL_VERSION, env.REQUEST, "not-an-int-id", None, 5, 7])
    )
    pair.worker._link.send_raw(msgpack.packb([env.PROTOCOL_VERSION, env.RESPONSE]))  # too short
    await still_serving(pair)


async def test_bad_request_body_gets_error_reply(pair: Pair) -> None:
    pair.sup.register("echo", lambda x: x)
    fut = asyncio.get_running_loop().create_future()
    pair.worker._calls.pending[777] = fut
    pair.worker._link.send_raw(env.pack(env.REQUEST, 777, None, "echo", b"\xc1garbage"))
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(fut, 5)
    assert getattr(info.value, "code", None) == "bad_request"


async def test_oversized_frames_dropped(runtime_dir: Path, raw_dealers: list[RawDealer]) -> None:
    """ZMQ_MAXMSGSIZE drops an oversized frame (and its connection) before buffering it."""
    address = ipc_address(runtime_dir, "small")
    endpoint = RouterEndpoint(address, authenticate=accept_secret, max_frame_bytes=4096)
    pair = await open_pair(address, endpoint)
    other = await DealerEndpoint.connect(
        address, identity=new_identity("engine", "other"), hello=HELLO, timeout=5
    )
    try:
        big = raw(raw_dealers, address, b"big-sender")
        big.send(env.pack(env.HELLO, {**HELLO, "pad": "x" * 100_000}))
        assert await big.recv(timeout=0.5) is None  # never processed
        # an established peer sending an oversized frame loses its connection (both sides
        # see PeerGone); the endpoint keeps serving the others
        sup_peer = pair.sup
        with pytest.raises(PeerGone):
            await pair.worker.call("anything", "y" * 10_000, timeout=5)
        await asyncio.wait_for(sup_peer.wait_closed(), 5)
        other.register("echo", lambda x: x)
        sup_other = endpoint.peer(other.identity)
        assert sup_other is not None
        assert await sup_other.call("echo", "z" * 1000, timeout=5) == "z" * 1000
    finally:
        await other.aclose()
        await pair.worker.aclose()
        await endpoint.aclose()


async def test_identity_spoofing_refused(pair: Pair, raw_dealers: list[RawDealer]) -> None:
    called: list[Any] = []
    pair.sup.register("steal", lambda: called.append(1))
    # 1. another connection claiming a live identity: ZeroMQ ignores it (ROUTER_HANDOVER=0)
    spoof = raw(raw_dealers, pair.address, pair.sup.identity)
    spoof.send(env.pack(env.REQUEST, 1, None, "steal", msgpack.packb([[], {}])))
    spoof.send(env.pack(env.HELLO, HELLO))
    # 2. a HELLO whose claimed identity is not its connection identity
    liar = raw(raw_dealers, pair.address, b"liar")
    liar.send(env.pack(env.HELLO, {**HELLO, "identity": pair.sup.identity.hex()}))
    answer = await liar.recv()
    assert answer is not None and answer[1] == env.REFUSE
    assert "another identity" in answer[2]
    # 3. a second HELLO on an established connection
    pair.worker._link.send_raw(env.pack(env.HELLO, {**HELLO, "id": "other"}))
    await still_serving(pair)
    assert called == []
    assert pair.endpoint.peer(pair.sup.identity) is pair.sup
    assert pair.sup.info["id"] == "test"


async def test_second_bind_on_live_path_refused_and_stale_path_reused(
    runtime_dir: Path,
) -> None:
    address = ipc_address(runtime_dir, "live")
    first = RouterEndpoint(address, authenticate=accept_secret)
    first.start()
    try:
        second = RouterEndpoint(address, authenticate=accept_secret)
        with pytest.raises(OSError, match="refusing to bind"):
            second.start()
    finally:
        await first.aclose()
    # a stale socket file (its process died without unlinking)
    stale_path = str(runtime_dir / "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale_path)
    s.close()
    assert os.path.exists(stale_path)
    address = ipc_address(runtime_dir, "stale")
    pair = await open_pair(address)
    try:
        await still_serving(pair)
        assert stat.S_IMODE(os.stat(stale_path).st_mode) == 0o600
    finally:
        await pair.worker.aclose()
        await pair.endpoint.aclose()


async def test_tcp_refused_with_clear_error() -> None:
    with pytest.raises(ValueError, match="CURVE"):
        RouterEndpoint("tcp://127.0.0.1:5555", authenticate=accept_secret)
    with pytest.raises(ValueError, match="CURVE"):
        await DealerEndpoint.connect("tcp://127.0.0.1:5555", identity=b"w", hello=HELLO)


def test_runtime_dir_is_private_and_paths_checked(tmp_path: Path) -> None:
    d = tmp_path / "run" / "takopi"
    d.parent.mkdir()
    os.chmod(d.parent, 0o755)
    made = make_runtime_dir(d)
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    os.chmod(made, 0o755)
    make_runtime_dir(made)
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(PermissionError, match="not a plain directory"):
        make_runtime_dir(link)
    with pytest.raises(ValueError, match="longer than"):
        ipc_address(tmp_path / ("x" * 120), "sup")
    assert ipc_address(made, "sup") == f"ipc://{made}/sup.sock"
    assert new_identity("engine", "codex") != new_identity("engine", "codex")


async def test_connect_times_out_when_nobody_listens(runtime_dir: Path) -> None:
    from takopi.rpc import CallTimeout

    with pytest.raises(CallTimeout, match="no answer to HELLO"):
        await DealerEndpoint.connect(
            ipc_address(runtime_dir, "nobody"), identity=b"w1", hello=HELLO, timeout=0.3
        )
