"""Property-based fuzzing of RPC frames (issue #14): random, corrupt and truncated multipart
frames and msgpack payloads thrown at a real :class:`~takopi.rpc.RouterEndpoint` socket — from
connections that never said HELLO and from authenticated peers — and at the codec's decode
path. The endpoint rejects with a log line, never crashes (no exception escapes a handler:
``rpc.socket.dispatch_failed``), never hangs (every check is bounded), and keeps serving valid
calls afterwards, on the fuzzing connection itself and on a well-behaved worker.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import msgpack
import pytest
import zmq
from hypothesis import given, note
from hypothesis import strategies as st
from structlog.testing import capture_logs

from takopi.rpc import Peer, RouterEndpoint, codec, ipc_address, make_runtime_dir
from takopi.rpc import envelope as env
from tests.rpc.conftest import SECRET, Pair, accept_secret, open_pair

pytestmark = [
    pytest.mark.timeout(240),
    # the strategies below are big composite trees; their repr only matters on failure
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

T = TypeVar("T")
HELLO = {"kind": "engine", "id": "fuzz", "distribution": "takopi", "secret": SECRET}
CHECK_ID = 2**40
"""Request id of the valid call sent after the fuzz frames (far from generated ids)."""

# ------------------------------------------------------------------ strategies

_names = codec.registered_names()
_ext_payload = st.one_of(
    st.binary(max_size=48),
    # tags naming real registered types, with plausible or random field lists
    st.builds(
        lambda name, fields: f"{name}\0{','.join(fields)}".encode(),
        st.sampled_from(_names),
        st.lists(st.sampled_from(("text", "value", "id", "engine", "\xff", "")), max_size=4),
    ),
    st.sampled_from(_names).map(str.encode),
)
_ext = st.builds(msgpack.ExtType, st.one_of(st.integers(0, 12), st.just(127)), _ext_payload)
_int = st.integers(-(2**63), 2**64 - 1)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    _int,
    st.floats(allow_nan=True),
    st.text(max_size=24),
    st.binary(max_size=24),
    _ext,
)
values = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        # a tag heading an array, as the codec writes registered values
        st.tuples(_ext, st.lists(inner, max_size=4)).map(lambda t: [t[0], *t[1]]),
        st.dictionaries(st.one_of(st.text(max_size=8), _int), inner, max_size=4),
    ),
    max_leaves=20,
)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


bodies = st.one_of(
    values.map(_pack),
    st.tuples(st.lists(values, max_size=3), st.dictionaries(st.text(max_size=6), values)).map(
        lambda ak: _pack([ak[0], ak[1]])
    ),
    st.binary(max_size=64),
)
_field = st.one_of(values, bodies)
_kind = st.one_of(st.integers(0, 20), st.sampled_from(sorted(env.KIND_NAMES)))
envelopes = st.builds(
    lambda version, kind, fields: _pack([version, kind, *fields]),
    st.one_of(st.just(env.PROTOCOL_VERSION), st.integers(-1, 5)),
    _kind,
    st.lists(_field, max_size=6),
)
# Well-formed frames of the real kinds with random field values.
typed = st.one_of(
    st.builds(
        lambda rid, target, method, body: env.pack(env.REQUEST, rid, target, method, body),
        st.one_of(st.integers(-5, 2**64 - 1), values),
        st.one_of(st.none(), _int, values),
        st.one_of(st.sampled_from(("echo", "stream", "nope", "")), values),
        bodies,
    ),
    st.builds(
        lambda rid, target, method, window, body: env.pack(
            env.STREAM_OPEN, rid, target, method, window, body
        ),
        st.integers(-5, 100),
        st.none(),
        st.sampled_from(("echo", "stream", "nope")),
        st.one_of(st.integers(-5, 2**31), values),
        bodies,
    ),
    st.builds(
        lambda kind, rid, extra: env.pack(kind, rid, *extra),
        st.sampled_from(
            (
                env.RESPONSE,
                env.ERROR,
                env.STREAM_ITEMS,
                env.STREAM_END,
                env.CANCEL,
                env.CREDIT,
                env.PING,
                env.PONG,
                env.NOTIFY,
            )
        ),
        st.one_of(st.integers(-5, 100), values),
        st.lists(_field, max_size=3),
    ),
    st.builds(lambda refs: env.pack(env.RELEASE, refs), values),
)


@st.composite
def corrupted(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    """A frame cut short, or with a few bytes overwritten."""
    frame = draw(source)
    if not frame:
        return frame
    if draw(st.booleans()):
        return frame[: draw(st.integers(0, len(frame) - 1))]
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


frames = st.one_of(
    st.binary(max_size=200),
    envelopes,
    typed,
    corrupted(envelopes),
    corrupted(typed),
)
# What a connection sends: each message is 1..3 ZeroMQ frames (the endpoint expects one).
messages = st.lists(
    st.one_of(
        frames.map(lambda f: [f]),
        st.lists(frames, min_size=2, max_size=3),
    ),
    min_size=1,
    max_size=8,
)

# ------------------------------------------------------------------ a real endpoint


class Served:
    """A RouterEndpoint on its own event loop thread with one well-behaved worker."""

    def __init__(self) -> None:
        self.dir = make_runtime_dir(tempfile.mkdtemp(prefix="tkfz-", dir="/tmp"))
        self.address = ipc_address(self.dir, "sup")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.endpoint = RouterEndpoint(self.address, authenticate=accept_secret)
        self.pair: Pair = self.run(open_pair(self.address, self.endpoint))
        self.endpoint.on_peer = self._serve_peer
        self._serve_peer(self.pair.sup)
        self.pair.worker.register("echo", lambda x: x)
        self.ctx = zmq.Context()
        self._identities = itertools.count()

    @staticmethod
    def _serve_peer(peer: Peer) -> None:
        peer.register("echo", lambda x: x)

        async def stream(n: int) -> Any:
            for i in range(int(n)):
                yield i

        peer.register_stream("stream", stream)

    def run(self, coro: Awaitable[T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def dealer(self, tag: str) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 5000)
        sock.setsockopt(zmq.ROUTING_ID, f"fuzz-{tag}-{next(self._identities)}".encode())
        sock.connect(self.address)
        return sock

    def still_serving(self) -> None:
        """Valid calls both ways on the well-behaved worker."""

        async def check() -> None:
            assert await self.pair.sup.call("echo", "alive", timeout=5) == "alive"
            assert await self.pair.worker.call("echo", [1, "x"], timeout=5) == [1, "x"]

        self.run(check())
        assert self.pair.sup.closed is False

    def close(self) -> None:
        async def shut() -> None:
            await self.pair.worker.aclose()
            await self.endpoint.aclose()

        self.run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.ctx.destroy(linger=0)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served()
    try:
        yield s
    finally:
        s.close()


def _replies(sock: zmq.Socket[Any], until: Any, gone: Any = lambda: False) -> list[list[Any]]:
    """Frames received until ``until(msg)`` holds for one (included), or ``gone()`` once
    nothing more comes; bounded (AssertionError after 10 s)."""
    got: list[list[Any]] = []
    for _ in range(200):
        if not sock.poll(50):
            if gone():
                return got
            continue
        msg = env.unpack(sock.recv())
        got.append(msg)
        if until(msg):
            return got
    raise AssertionError(f"no answer within 10 s; received {got}")


def _no_crash(logs: list[dict[str, Any]]) -> None:
    crashed = [
        entry
        for entry in logs
        if entry.get("event") == "rpc.socket.dispatch_failed"
        or entry.get("exc_info")
        or entry.get("log_level") in ("error", "critical")
    ]
    assert not crashed, crashed


def _wait_gone(served: Served, identity: bytes) -> None:
    for _ in range(200):
        if served.endpoint.peer(identity) is None:
            return
        threading.Event().wait(0.025)
    raise AssertionError(f"peer {identity!r} still connected after BYE")


# ------------------------------------------------------------------ properties


@given(messages)
def test_frames_before_hello_are_refused_or_dropped(
    served: Served, sent: list[list[bytes]]
) -> None:
    refused, dropped = served.endpoint.refused_count, served.endpoint.dropped_count
    peers = set(served.endpoint.peers)
    sock = served.dealer("anon")
    identity = sock.getsockopt(zmq.ROUTING_ID)
    try:
        with capture_logs() as logs:
            for parts in sent:
                sock.send_multipart(parts)
            # Then a valid HELLO on the same connection: frames of one connection are read
            # in order, so its WELCOME means every fuzz frame was dealt with — and the
            # endpoint still accepts this connection.
            for _ in range(50):
                sock.send(env.pack(env.HELLO, HELLO))
                got = _replies(sock, lambda m: m[1] == env.WELCOME or "duplicate" in str(m))
                if got[-1][1] == env.WELCOME:
                    break
                threading.Event().wait(0.02)  # a fuzz HELLO is still being checked
            else:
                raise AssertionError("never welcomed")
        note(f"logs: {logs}")
        _no_crash(logs)
        # No fuzz frame carries the secret: only the final HELLO got in; each frame was
        # refused or dropped, with a log line.
        assert set(served.endpoint.peers) == peers | {identity}
        handled = served.endpoint.refused_count - refused + served.endpoint.dropped_count - dropped
        assert handled >= 1
        assert any(e["event"] not in ("rpc.handshake.accepted", "rpc.peer.lost") for e in logs), (
            logs
        )
        served.still_serving()
    finally:
        sock.send(env.pack(env.BYE, "fuzz example over"))
        _wait_gone(served, identity)
        sock.close(linger=0)


@given(messages)
def test_frames_from_an_authenticated_peer_never_break_it(
    served: Served, sent: list[list[bytes]]
) -> None:
    sock = served.dealer("auth")
    identity = sock.getsockopt(zmq.ROUTING_ID)
    try:
        sock.send(env.pack(env.HELLO, HELLO))
        assert _replies(sock, lambda m: m[1] == env.WELCOME)[-1][1] == env.WELCOME
        with capture_logs() as logs:
            for parts in sent:
                sock.send_multipart(parts)
            # The fuzzing connection itself still gets a valid call answered (unless one
            # of the fuzz frames closed it).
            sock.send(env.pack(env.REQUEST, CHECK_ID, None, "echo", _pack([["ok"], {}])))
            got = _replies(
                sock,
                lambda m: m[1] in (env.RESPONSE, env.ERROR) and m[2] == CHECK_ID,
                gone=lambda: served.endpoint.peer(identity) is None,
            )
        note(f"logs: {logs}")
        _no_crash(logs)
        if got and got[-1][2:3] == [CHECK_ID]:
            assert got[-1][1] == env.RESPONSE, got[-1]
            assert codec.decode(got[-1][3]) == "ok"
        else:
            # Only an orderly BYE closes an established peer.
            lost = [e for e in logs if e.get("event") == "rpc.peer.lost"]
            assert lost and "closed the connection" in str(lost[0].get("reason")), logs
        served.still_serving()
    finally:
        sock.send(env.pack(env.BYE, "fuzz example over"))
        _wait_gone(served, identity)
        sock.close(linger=0)


@given(st.one_of(bodies, corrupted(bodies), st.binary(max_size=300)))
def test_codec_decode_rejects_with_value_or_type_error(data: bytes) -> None:
    try:
        codec.decode(data)
    except (ValueError, TypeError):
        pass


@given(st.one_of(bodies, corrupted(bodies)))
def test_peer_codec_decode_rejects_with_value_or_type_error(data: bytes) -> None:
    def importer(code: int, payload: Any) -> Any:
        raise ValueError(f"no such reference: {payload!r}")

    try:
        codec.Codec(None, importer).decode(data)
    except (ValueError, TypeError):
        pass
