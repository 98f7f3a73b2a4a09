"""A real process on the other end of the socket, for the rpc process tests.

``python -m tests.rpc.child worker <address> <secret>``: a DEALER serving a few methods.
``python -m tests.rpc.child worker <address> <secret> <pid>``: the same, claiming in its HELLO
that its process is ``pid`` (another process the test controls), so that "the process exited"
and "the connection went away" can be told apart.
``python -m tests.rpc.child router <address> <secret>``: a ROUTER accepting that secret.
Prints ``READY`` on stdout once connected/bound; on refusal prints the reason to stderr and
exits with status 3.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from takopi.rpc import DealerEndpoint, HandshakeRefused, RouterEndpoint, new_identity


async def worker(address: str, secret: str, claimed_pid: int | None = None) -> int:
    hello: dict[str, Any] = {"kind": "engine", "id": "child", "distribution": "tests"}
    hello["secret"] = secret
    if claimed_pid is not None:
        hello["pid"] = claimed_pid
    try:
        peer = await DealerEndpoint.connect(
            address, identity=new_identity("engine", "child"), hello=hello, timeout=20
        )
    except HandshakeRefused as exc:
        print(f"refused: {exc.message}", file=sys.stderr, flush=True)
        return 3
    produced = 0

    async def hang() -> None:
        await asyncio.sleep(3600)

    async def gated(path: str) -> str:
        while not os.path.exists(path):
            await asyncio.sleep(0.005)
        return "released"

    async def numbers(n: int) -> AsyncIterator[int]:
        nonlocal produced
        for i in range(n):
            produced += 1
            yield i

    async def endless() -> AsyncIterator[int]:
        i = 0
        while True:
            i += 1
            yield i
            await asyncio.sleep(0.001)

    peer.register("echo", lambda x: x)
    peer.register("pid", os.getpid)
    peer.register("hang", hang)
    peer.register("gated", gated)
    peer.register("produced", lambda: produced)
    peer.register_stream("numbers", numbers)
    peer.register_stream("endless", endless)
    print("READY", flush=True)
    await peer.wait_closed()
    return 0


async def router(address: str, secret: str) -> int:
    async def auth(identity: bytes, hello: dict[str, Any]) -> bool | str:
        return True if hello.get("secret") == secret else "wrong secret"

    async def hang() -> None:
        await asyncio.sleep(3600)

    def on_peer(peer: Any) -> None:
        peer.register("hang", hang)
        peer.register("echo", lambda x: x)

    endpoint = RouterEndpoint(address, authenticate=auth, on_peer=on_peer)
    endpoint.start()
    print("READY", flush=True)
    await endpoint.serve()
    return 0


def main() -> int:
    mode, address, secret = sys.argv[1:4]
    if mode == "worker":
        claimed = int(sys.argv[4]) if len(sys.argv) > 4 else None
        return asyncio.run(worker(address, secret, claimed))
    return asyncio.run(router(address, secret))


if __name__ == "__main__":
    sys.exit(main())
