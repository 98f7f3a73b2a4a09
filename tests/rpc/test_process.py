"""Real child processes on the other end: death, refusal, SIGSTOP and flow control."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from takopi.rpc import (
    CallTimeout,
    DealerEndpoint,
    Peer,
    PeerGone,
    RouterEndpoint,
    ipc_address,
    new_identity,
)

from .conftest import SECRET, accept_secret

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]


def spawn(mode: str, address: str, secret: str = SECRET, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.rpc.child", mode, address, secret, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    assert line.strip() == "READY", proc.stderr.read() if proc.stderr else line


def reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class Supervisor:
    def __init__(self, address: str) -> None:
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.lost: asyncio.Queue[bytes] = asyncio.Queue()
        self.endpoint = RouterEndpoint(
            address,
            authenticate=accept_secret,
            on_peer=self.peers.put_nowait,
            on_peer_lost=self.lost.put_nowait,
        )
        self.endpoint.start()


@pytest.fixture
async def supervisor(runtime_dir: Path) -> AsyncIterator[Supervisor]:
    sup = Supervisor(ipc_address(runtime_dir, "sup"))
    try:
        yield sup
    finally:
        await sup.endpoint.aclose()


async def test_kill_9_worker_fails_pending_calls_and_streams(supervisor: Supervisor) -> None:
    proc = spawn("worker", supervisor.endpoint.address)
    try:
        await wait_ready(proc)
        peer = await asyncio.wait_for(supervisor.peers.get(), 10)
        assert await peer.call("pid", timeout=10) == proc.pid
        assert peer.info["pid"] == proc.pid
        call = asyncio.create_task(peer.call("hang"))

        async def consume() -> int:
            n = 0
            async with peer.stream("endless", window=4) as items:
                async for _ in items:
                    n += 1
            return n

        stream = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(PeerGone, match=str(proc.pid)):
            await asyncio.wait_for(call, 5)
        with pytest.raises(PeerGone):
            await asyncio.wait_for(stream, 5)
        assert await asyncio.wait_for(supervisor.lost.get(), 5) == peer.identity
        assert supervisor.endpoint.peer(peer.identity) is None
    finally:
        reap(proc)


async def test_wrong_secret_worker_exits_with_reason(supervisor: Supervisor) -> None:
    good = spawn("worker", supervisor.endpoint.address)
    bad = spawn("worker", supervisor.endpoint.address, secret="not-the-secret")
    try:
        await wait_ready(good)
        peer = await asyncio.wait_for(supervisor.peers.get(), 10)
        rc = await asyncio.wait_for(asyncio.to_thread(bad.wait), 30)
        assert rc == 3
        assert bad.stderr is not None
        assert "refused: wrong secret" in bad.stderr.read()
        assert supervisor.endpoint.refused_count == 1
        assert await peer.call("echo", "fine", timeout=10) == "fine"
    finally:
        reap(good)
        reap(bad)


async def test_sigstopped_worker_detected_by_loop_ping(supervisor: Supervisor) -> None:
    proc = spawn("worker", supervisor.endpoint.address)
    try:
        await wait_ready(proc)
        peer = await asyncio.wait_for(supervisor.peers.get(), 10)
        assert await peer.ping(timeout=10) >= 0
        os.kill(proc.pid, signal.SIGSTOP)
        with pytest.raises(CallTimeout):
            await peer.ping(timeout=0.5)
        os.kill(proc.pid, signal.SIGCONT)
        assert await peer.ping(timeout=10) >= 0
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        reap(proc)


async def test_slow_consumer_bounds_producer_in_another_process(supervisor: Supervisor) -> None:
    proc = spawn("worker", supervisor.endpoint.address)
    window = 32
    try:
        await wait_ready(proc)
        peer = await asyncio.wait_for(supervisor.peers.get(), 10)
        consumed = 0
        worst = 0
        async with peer.stream("numbers", 2000, window=window) as items:
            async for item in items:
                assert item == consumed
                consumed += 1
                if consumed % 100 == 0:
                    await asyncio.sleep(0.05)  # let the producer run as far as it can
                    produced = await peer.call("produced", timeout=10)
                    worst = max(worst, produced - consumed)
        assert consumed == 2000
        assert worst <= window
        assert worst > 0
    finally:
        reap(proc)


async def test_worker_sees_supervisor_death(runtime_dir: Path) -> None:
    address = ipc_address(runtime_dir, "child-sup")
    proc = spawn("router", address)
    try:
        await wait_ready(proc)
        peer = await DealerEndpoint.connect(
            address,
            identity=new_identity("engine", "me"),
            hello={"kind": "engine", "id": "me", "secret": SECRET},
            timeout=20,
        )
        assert peer.info["pid"] == proc.pid
        assert await peer.call("echo", 1, timeout=10) == 1
        call = asyncio.create_task(peer.call("hang"))
        await asyncio.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(PeerGone):
            await asyncio.wait_for(call, 5)
        assert peer.closed
    finally:
        reap(proc)


async def test_call_right_after_handshake_is_not_lost(runtime_dir: Path) -> None:
    """The supervisor calls in on_peer: that request can arrive in the same burst as WELCOME."""
    results: asyncio.Queue[object] = asyncio.Queue()

    def on_peer(peer: Peer) -> None:
        async def first_call() -> None:
            try:
                await results.put(await peer.call("echo", "first", timeout=10))
            except Exception as exc:
                await results.put(exc)

        asyncio.get_running_loop().create_task(first_call())

    endpoint = RouterEndpoint(
        ipc_address(runtime_dir, "eager"), authenticate=accept_secret, on_peer=on_peer
    )
    endpoint.start()
    procs = [spawn("worker", endpoint.address) for _ in range(3)]
    try:
        got = [await asyncio.wait_for(results.get(), 30) for _ in procs]
        assert got == ["first", "first", "first"]
    finally:
        for proc in procs:
            reap(proc)
        await endpoint.aclose()


async def _exiting(endpoint: RouterEndpoint, peer: Peer) -> None:
    """Until the endpoint saw ``peer``'s process exit (its pidfd callback ran)."""
    while peer.identity not in endpoint._exiting:
        await asyncio.sleep(0.005)


async def test_other_worker_disconnect_keeps_an_exited_peer_until_its_own_end(
    supervisor: Supervisor, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker B's process is gone but its last answer is still on the wire; worker A dies
    meanwhile. A's disconnect must close A only: B's answer is still dispatched, and B is
    closed when its own connection ends (the drain fallback is made long so that only the
    disconnect can close it within the test)."""
    from takopi.rpc import endpoint as endpoint_module

    monkeypatch.setattr(endpoint_module, "_EXIT_DRAIN_MAX", 60.0)
    stand_in = subprocess.Popen(["sleep", "600"])  # the process B claims to be
    a = spawn("worker", supervisor.endpoint.address)
    b = spawn("worker", supervisor.endpoint.address, SECRET, str(stand_in.pid))
    gate = runtime_dir / "gate"
    try:
        await wait_ready(a)
        await wait_ready(b)
        peers = [await asyncio.wait_for(supervisor.peers.get(), 10) for _ in range(2)]
        by_pid = {p.info["pid"]: p for p in peers}
        peer_a, peer_b = by_pid[a.pid], by_pid[stand_in.pid]
        answer = asyncio.create_task(peer_b.call("gated", str(gate), timeout=30))
        await asyncio.sleep(0.05)  # the request is on its way to B
        stand_in.kill()
        stand_in.wait(10)
        await asyncio.wait_for(_exiting(supervisor.endpoint, peer_b), 10)
        os.kill(a.pid, signal.SIGKILL)
        reason_a = await asyncio.wait_for(peer_a.wait_closed(), 10)
        assert str(a.pid) in str(reason_a)
        for _ in range(3):  # every probe scheduled by A's disconnect has run
            await asyncio.sleep(0.25)
        assert not peer_b.closed
        gate.touch()
        assert await asyncio.wait_for(answer, 10) == "released"
        b.kill()
        reason_b = await asyncio.wait_for(peer_b.wait_closed(), 10)
        assert str(stand_in.pid) in str(reason_b)
    finally:
        for proc in (a, b):
            reap(proc)
        if stand_in.poll() is None:
            stand_in.kill()
        stand_in.wait(10)


async def test_exited_peer_whose_connection_stays_is_closed_after_the_drain_limit(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback: a peer whose process exited is closed even if its connection never
    ends (a forked child holding the socket, say)."""
    from takopi.rpc import endpoint as endpoint_module

    monkeypatch.setattr(endpoint_module, "_EXIT_DRAIN_MAX", 0.2)
    stand_in = subprocess.Popen(["sleep", "600"])
    b = spawn("worker", supervisor.endpoint.address, SECRET, str(stand_in.pid))
    try:
        await wait_ready(b)
        peer_b = await asyncio.wait_for(supervisor.peers.get(), 10)
        pending = asyncio.create_task(peer_b.call("hang"))
        stand_in.kill()
        stand_in.wait(10)
        with pytest.raises(PeerGone, match=str(stand_in.pid)):
            await asyncio.wait_for(pending, 10)
        assert b.poll() is None  # B itself still runs and is still connected
    finally:
        reap(b)
        if stand_in.poll() is None:
            stand_in.kill()
        stand_in.wait(10)
