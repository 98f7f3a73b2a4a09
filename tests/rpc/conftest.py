"""Fixtures for the rpc tests: private runtime dirs with short paths and in-process pairs."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from takopi.rpc import (
    DealerEndpoint,
    Peer,
    RouterEndpoint,
    ipc_address,
    make_runtime_dir,
    new_identity,
)

SECRET = "s3cret-for-tests"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    # tmp_path can be too long for a unix socket path (107 bytes): use a short private dir.
    d = make_runtime_dir(tempfile.mkdtemp(prefix="tkrpc-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def accept_secret(identity: bytes, hello: dict[str, Any]) -> bool | str:
    """Test authenticator: the shared secret or a clear refusal."""
    if hello.get("secret") != SECRET:
        return "wrong secret"
    return True


@dataclass
class Pair:
    """A served ROUTER endpoint and one connected DEALER, both on the test's loop."""

    endpoint: RouterEndpoint
    sup: Peer  # supervisor-side peer (talks to the worker)
    worker: Peer  # worker-side peer (talks to the supervisor)
    address: str


async def open_pair(address: str, endpoint: RouterEndpoint | None = None) -> Pair:
    """Start an endpoint at ``address`` (unless given) and connect one worker to it."""
    accepted: asyncio.Queue[Peer] = asyncio.Queue()
    if endpoint is None:
        endpoint = RouterEndpoint(address, authenticate=accept_secret, on_peer=accepted.put_nowait)
    else:
        endpoint.on_peer = accepted.put_nowait
    endpoint.start()
    ident = new_identity("engine", "test")
    worker = await DealerEndpoint.connect(
        address,
        identity=ident,
        hello={"kind": "engine", "id": "test", "distribution": "takopi", "secret": SECRET},
        timeout=10,
    )
    sup = await asyncio.wait_for(accepted.get(), 10)
    assert sup.identity == ident
    return Pair(endpoint, sup, worker, address)


@pytest.fixture
async def pair(runtime_dir: Path) -> AsyncIterator[Pair]:
    p = await open_pair(ipc_address(runtime_dir, "sup"))
    try:
        yield p
    finally:
        await p.worker.aclose()
        await p.endpoint.aclose()
