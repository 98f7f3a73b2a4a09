"""RPC benchmark: round trip and streamed events/s through one hop, each against a raw pipe
measured in the same run (not part of the test suite).

    .venv/bin/python bench/bench_rpc.py [--calls 3000] [--events 200000] [--uvloop]

Round trip: this process (asyncio, ROUTER) calls ``echo`` on a worker process (DEALER) over
ipc://. Baselines, all against a child process: a blocking 8-byte ping-pong over two pipes,
JSON lines, raw blocking zmq, a blocking pipe doing the RPC's framing work (length-prefixed
msgpack envelope with a msgpack body), the same msgpack echo with both ends on asyncio loops
(the like-for-like baseline: the RPC runs on asyncio loops, so each side pays a loop wake-up),
and ZeroMQ driven by asyncio loops with no takopi code (the floor of this transport). Streaming: the worker
streams takopi ``ActionEvent`` objects (decoded into the real class here); baseline: the child
writes the same events as JSON lines into a pipe and this process reads and ``json.loads``
each line (what a runner does with an agent CLI's output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret"


def _event(i: int) -> Any:
    from takopi.model import Action, ActionEvent

    return ActionEvent(
        engine="codex",
        action=Action(id=f"item_{i}", kind="command", title="ls -la", detail={"exit_code": 0}),
        phase="completed",
        ok=True,
    )


def _event_json(i: int) -> str:
    return json.dumps(
        {
            "type": "item.completed",
            "item": {
                "id": f"item_{i}",
                "type": "command_execution",
                "command": "ls -la",
                "exit_code": 0,
                "status": "completed",
            },
        }
    )


# ---------------------------------------------------------------------------- child modes


def child_pipe_echo() -> None:
    while True:
        data = os.read(0, 8)
        if not data:
            return
        os.write(1, data)


def child_pipe_json_echo() -> None:
    for line in sys.stdin:
        sys.stdout.write(json.dumps(json.loads(line)) + "\n")
        sys.stdout.flush()


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


def child_pipe_msgpack_echo() -> None:
    """Length-prefixed msgpack request/response, the same framing work an RPC call does."""
    import msgpack

    while True:
        head = _read_exact(0, 4)
        if not head:
            return
        req = msgpack.unpackb(_read_exact(0, int.from_bytes(head, "little")))
        args = msgpack.unpackb(req[5])[0]
        body = msgpack.packb(args[0])
        frame = msgpack.packb([1, 2, req[2], body])
        os.write(1, len(frame).to_bytes(4, "little") + frame)


def child_zmq_echo(address: str) -> None:
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    sock.send(b"hi")
    while True:
        msg = sock.recv()
        if msg == b"quit":
            return
        sock.send(msg)


def child_asyncio_pipe_echo() -> None:
    """The msgpack echo on an asyncio loop (add_reader on stdin), like an RPC worker."""
    import msgpack

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        unpacker = msgpack.Unpacker()

        def readable() -> None:
            data = os.read(0, 65536)
            if not data:
                loop.remove_reader(0)
                done.set_result(None)
                return
            unpacker.feed(data)
            for req in unpacker:
                body = msgpack.packb(msgpack.unpackb(req[5])[0][0])
                os.write(1, msgpack.packb([1, 2, req[2], body]))

        loop.add_reader(0, readable)
        await done

    asyncio.run(serve())


def child_zmq_asyncio_echo(address: str) -> None:
    """A DEALER echo driven by an asyncio loop (add_reader on the socket's FD), no takopi."""
    import zmq

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        done: asyncio.Future[None] = loop.create_future()

        def drain() -> None:
            while sock.get(zmq.EVENTS) & zmq.POLLIN:
                msg = sock.recv(zmq.NOBLOCK)
                if msg == b"quit":
                    loop.remove_reader(sock.FD)
                    done.set_result(None)
                    return
                sock.send(msg, zmq.NOBLOCK)

        loop.add_reader(sock.FD, drain)
        sock.send(b"hi")
        drain()
        await done
        sock.close()

    asyncio.run(serve())


def child_pipe_events(n: int) -> None:
    out = sys.stdout
    for i in range(n):
        out.write(_event_json(i) + "\n")
    out.flush()


async def child_worker(address: str) -> None:
    from takopi.rpc import DealerEndpoint, new_identity

    peer = await DealerEndpoint.connect(
        address,
        identity=new_identity("engine", "bench"),
        hello={"kind": "engine", "id": "bench", "distribution": "bench", "secret": SECRET},
    )

    async def events(n: int) -> AsyncIterator[Any]:
        for i in range(n):
            yield _event(i)

    async def ints(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    peer.register("echo", lambda x: x)
    peer.register_stream("events", events)
    peer.register_stream("ints", ints)
    await peer.wait_closed()


# ---------------------------------------------------------------------------- measurements


def _run(coro: Any) -> Any:
    """asyncio.run, or uvloop's loop when TAKOPI_BENCH_UVLOOP=1 (optional, not a dependency)."""
    if os.environ.get("TAKOPI_BENCH_UVLOOP") == "1":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def _spawn(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, **kw)


def pipe_round_trips(n: int) -> list[float]:
    proc = _spawn("--child", "pipe-echo", stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()
    samples = []
    msg = b"12345678"
    for _ in range(200):  # warm up
        os.write(wfd, msg)
        os.read(rfd, 8)
    for _ in range(n):
        t0 = time.perf_counter()
        os.write(wfd, msg)
        os.read(rfd, 8)
        samples.append(time.perf_counter() - t0)
    proc.stdin.close()
    proc.wait()
    proc.stdout.close()
    return samples


def pipe_json_round_trips(n: int) -> list[float]:
    proc = _spawn("--child", "pipe-json-echo", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    samples = []
    for i in range(200 + n):
        t0 = time.perf_counter()
        proc.stdin.write(json.dumps({"id": i, "method": "echo", "args": [i]}).encode() + b"\n")
        proc.stdin.flush()
        json.loads(proc.stdout.readline())
        if i >= 200:
            samples.append(time.perf_counter() - t0)
    proc.stdin.close()
    proc.wait()
    proc.stdout.close()
    return samples


def pipe_msgpack_round_trips(n: int) -> list[float]:
    """Blocking raw pipe with the RPC's framing work: length prefix + msgpack envelope/body."""
    import msgpack

    proc = _spawn(
        "--child", "pipe-msgpack-echo", stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    assert proc.stdin is not None and proc.stdout is not None
    wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()
    samples = []
    for i in range(200 + n):
        t0 = time.perf_counter()
        frame = msgpack.packb([1, 1, i, None, "echo", msgpack.packb([[i], {}])])
        os.write(wfd, len(frame).to_bytes(4, "little") + frame)
        head = _read_exact(rfd, 4)
        resp = msgpack.unpackb(_read_exact(rfd, int.from_bytes(head, "little")))
        assert msgpack.unpackb(resp[3]) == i
        if i >= 200:
            samples.append(time.perf_counter() - t0)
    proc.stdin.close()
    proc.wait()
    proc.stdout.close()
    return samples


def _zmq_echo_child(mode: str) -> tuple[Any, subprocess.Popen[bytes], bytes, str]:
    """A ROUTER bound in a private dir and a child echo process (``mode``) connected to it."""
    import zmq

    from takopi.rpc import ipc_address, make_runtime_dir

    rundir = make_runtime_dir(tempfile.mkdtemp(prefix="tkbench-", dir="/tmp"))
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    address = ipc_address(rundir, mode)
    sock.bind(address)
    proc = _spawn("--child", mode, address)
    ident, _ = sock.recv_multipart()
    return sock, proc, ident, str(rundir)


def _zmq_echo_done(sock: Any, proc: subprocess.Popen[bytes], ident: bytes, rundir: str) -> None:
    sock.send_multipart([ident, b"quit"])
    proc.wait()
    sock.close()
    shutil.rmtree(rundir, ignore_errors=True)


def zmq_round_trips(n: int) -> list[float]:
    sock, proc, ident, rundir = _zmq_echo_child("zmq-echo")
    samples = []
    for i in range(200 + n):
        t0 = time.perf_counter()
        sock.send_multipart([ident, b"12345678"])
        sock.recv_multipart()
        if i >= 200:
            samples.append(time.perf_counter() - t0)
    _zmq_echo_done(sock, proc, ident, rundir)
    return samples


def asyncio_pipe_round_trips(n: int) -> list[float]:
    """Both ends on asyncio loops over a raw pipe, msgpack framing: the same programming
    model as the RPC, minus ZeroMQ and takopi's protocol."""
    import msgpack

    proc = _spawn(
        "--child", "asyncio-pipe-echo", stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    assert proc.stdin is not None and proc.stdout is not None
    wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()

    async def measure() -> list[float]:
        loop = asyncio.get_running_loop()
        unpacker = msgpack.Unpacker()
        waiting: dict[int, asyncio.Future[Any]] = {}

        def readable() -> None:
            unpacker.feed(os.read(rfd, 65536))
            for resp in unpacker:
                waiting.pop(resp[2]).set_result(msgpack.unpackb(resp[3]))

        loop.add_reader(rfd, readable)
        samples = []
        for i in range(200 + n):
            t0 = time.perf_counter()
            fut = loop.create_future()
            waiting[i] = fut
            os.write(wfd, msgpack.packb([1, 1, i, None, "echo", msgpack.packb([[i], {}])]))
            assert await fut == i
            if i >= 200:
                samples.append(time.perf_counter() - t0)
        loop.remove_reader(rfd)
        return samples

    samples = asyncio.run(measure())
    proc.stdin.close()
    proc.wait()
    proc.stdout.close()
    return samples


def zmq_asyncio_round_trips(n: int) -> list[float]:
    """ROUTER and DEALER both driven by asyncio loops, 8-byte messages, no takopi code: the
    floor any asyncio RPC over ZeroMQ starts from."""
    import zmq

    sock, proc, ident, rundir = _zmq_echo_child("zmq-asyncio-echo")

    async def measure() -> list[float]:
        loop = asyncio.get_running_loop()
        waiter: list[asyncio.Future[None]] = []

        def drain() -> None:
            while sock.get(zmq.EVENTS) & zmq.POLLIN:
                sock.recv_multipart(zmq.NOBLOCK)
                if waiter and not waiter[0].done():
                    waiter[0].set_result(None)

        loop.add_reader(sock.FD, drain)
        samples = []
        for i in range(200 + n):
            t0 = time.perf_counter()
            fut = loop.create_future()
            waiter[:] = [fut]
            sock.send_multipart([ident, b"12345678"], zmq.NOBLOCK)
            drain()
            await fut
            if i >= 200:
                samples.append(time.perf_counter() - t0)
        loop.remove_reader(sock.FD)
        return samples

    samples = asyncio.run(measure())
    _zmq_echo_done(sock, proc, ident, rundir)
    return samples


def pipe_events(n: int) -> float:
    t0 = time.perf_counter()
    proc = _spawn("--child", "pipe-events", str(n), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    count = 0
    for line in proc.stdout:
        json.loads(line)
        count += 1
    proc.wait()
    proc.stdout.close()
    assert count == n
    return n / (time.perf_counter() - t0)


async def rpc_measurements(calls: int, events: int) -> dict[str, Any]:
    from takopi.model import ActionEvent
    from takopi.rpc import Peer, RouterEndpoint, ipc_address, make_runtime_dir

    rundir = make_runtime_dir(tempfile.mkdtemp(prefix="tkbench-", dir="/tmp"))
    peers: asyncio.Queue[Peer] = asyncio.Queue()

    async def auth(identity: bytes, hello: dict[str, Any]) -> bool:
        return hello.get("secret") == SECRET

    endpoint = RouterEndpoint(
        ipc_address(rundir, "sup"), authenticate=auth, on_peer=peers.put_nowait
    )
    endpoint.start()
    t_spawn = time.perf_counter()
    proc = _spawn("--child", "worker", endpoint.address)
    peer = await asyncio.wait_for(peers.get(), 30)
    spawn_to_hello = time.perf_counter() - t_spawn
    out: dict[str, Any] = {"spawn_to_hello": spawn_to_hello}
    try:
        for _ in range(300):
            await peer.call("echo", 1)
        samples = []
        for i in range(calls):
            t0 = time.perf_counter()
            await peer.call("echo", i)
            samples.append(time.perf_counter() - t0)
        out["rtt"] = samples

        async def stream(method: str, n: int, check: type | None) -> float:
            t0 = time.perf_counter()
            count = 0
            async with peer.stream(method, n, window=4096) as items:
                async for item in items:
                    if check is not None:
                        assert type(item) is check
                    count += 1
            assert count == n
            return n / (time.perf_counter() - t0)

        out["events_per_s"] = await stream("events", events, ActionEvent)
        out["ints_per_s"] = await stream("ints", events, None)
    finally:
        await peer.aclose()
        await endpoint.aclose()
        proc.wait(10)
        shutil.rmtree(rundir, ignore_errors=True)
    return out


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--child", nargs="*")
    ap.add_argument(
        "--uvloop", action="store_true", help="run both RPC ends on uvloop (pip install uvloop)"
    )
    args = ap.parse_args()
    if args.child:
        mode = args.child[0]
        if mode == "pipe-echo":
            child_pipe_echo()
        elif mode == "pipe-json-echo":
            child_pipe_json_echo()
        elif mode == "pipe-msgpack-echo":
            child_pipe_msgpack_echo()
        elif mode == "zmq-echo":
            child_zmq_echo(args.child[1])
        elif mode == "asyncio-pipe-echo":
            child_asyncio_pipe_echo()
        elif mode == "zmq-asyncio-echo":
            child_zmq_asyncio_echo(args.child[1])
        elif mode == "pipe-events":
            child_pipe_events(int(args.child[1]))
        elif mode == "worker":
            _run(child_worker(args.child[1]))
        return

    pipe = pipe_round_trips(args.calls)
    pipe_json = pipe_json_round_trips(args.calls)
    pipe_msgpack = pipe_msgpack_round_trips(args.calls)
    raw_zmq = zmq_round_trips(args.calls)
    asyncio_pipe = asyncio_pipe_round_trips(args.calls)
    zmq_floor = zmq_asyncio_round_trips(args.calls)
    if args.uvloop:
        os.environ["TAKOPI_BENCH_UVLOOP"] = "1"  # inherited by the worker process
    rpc = _run(rpc_measurements(args.calls, args.events))
    pipe_eps = pipe_events(args.events)
    rtt = rpc["rtt"]
    us = 1e6
    print(
        f"round trip ({args.calls} calls to a child process, "
        f"{'uvloop' if args.uvloop else 'asyncio'} loop; load average {os.getloadavg()[0]:.1f})"
    )
    rows = [
        ("raw pipe, 8 bytes", pipe),
        ("pipe, JSON lines", pipe_json),
        ("raw zmq (blocking)", raw_zmq),
        ("pipe, msgpack+len", pipe_msgpack),
        ("asyncio pipe, msgpack", asyncio_pipe),
        ("asyncio zmq, no takopi", zmq_floor),
        ("takopi.rpc call", rtt),
    ]
    for label, samples in rows:
        print(
            f"  {label:22s} median {statistics.median(samples) * us:8.1f} us"
            f"   p99 {_pct(samples, 0.99) * us:8.1f} us"
        )
    r_med = statistics.median(rtt)
    for label, samples in rows[:-1]:
        print(
            f"  rpc / {label:22s} median {r_med / statistics.median(samples):6.2f} x"
            f"   p99 {_pct(rtt, 0.99) / _pct(samples, 0.99):6.2f} x"
        )
    vs_async = r_med / statistics.median(asyncio_pipe)
    print(
        f"  target rpc <= 3x pipe: {vs_async:.2f} x the asyncio pipe "
        f"({'met' if vs_async <= 3 else 'NOT met'}); "
        f"{r_med / statistics.median(pipe_msgpack):.2f} x the blocking msgpack pipe; "
        f"ZeroMQ alone (asyncio, no takopi) is already "
        f"{statistics.median(zmq_floor) / statistics.median(pipe_msgpack):.2f} x that pipe"
    )
    print(f"streaming ({args.events} events, one hop)")
    print(f"  raw pipe JSON lines  {pipe_eps:12,.0f} events/s")
    print(
        f"  rpc ActionEvent      {rpc['events_per_s']:12,.0f} events/s   "
        f"ratio {rpc['events_per_s'] / pipe_eps:.2f} x   (target >= 100k/s)"
    )
    print(f"  rpc small ints       {rpc['ints_per_s']:12,.0f} items/s")
    print(f"spawn -> handshake done  {rpc['spawn_to_hello'] * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
