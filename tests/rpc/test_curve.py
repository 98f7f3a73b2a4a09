"""tcp:// on 127.0.0.1, only with CURVE encryption and a client-key allow-list."""

from __future__ import annotations

import asyncio

import pytest

from takopi.rpc import (
    CurveClient,
    CurveServer,
    DealerEndpoint,
    HandshakeRefused,
    Peer,
    RouterEndpoint,
    curve_keypair,
    new_identity,
)

from .conftest import SECRET, accept_secret

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

HELLO = {"kind": "engine", "id": "tcp", "distribution": "takopi", "secret": SECRET}


async def test_tcp_with_curve_allow_list() -> None:
    server_pub, server_sec = curve_keypair()
    good_pub, good_sec = curve_keypair()
    bad_pub, bad_sec = curve_keypair()
    accepted: asyncio.Queue[Peer] = asyncio.Queue()
    endpoint = RouterEndpoint(
        "tcp://127.0.0.1:*",
        authenticate=accept_secret,
        on_peer=accepted.put_nowait,
        curve=CurveServer(server_pub, server_sec, frozenset({good_pub})),
    )
    endpoint.start()
    try:
        assert endpoint.address.startswith("tcp://127.0.0.1:")
        assert not endpoint.address.endswith(":*")
        worker = await DealerEndpoint.connect(
            endpoint.address,
            identity=new_identity("engine", "tcp"),
            hello=HELLO,
            timeout=10,
            curve=CurveClient(server_pub, good_pub, good_sec),
        )
        sup = await asyncio.wait_for(accepted.get(), 10)
        worker.register("echo", lambda x: x)
        assert await sup.call("echo", "over curve", timeout=10) == "over curve"
        assert "secret" not in sup.info
        # a key that is not on the allow-list never gets to say HELLO
        with pytest.raises(HandshakeRefused, match="CURVE"):
            await DealerEndpoint.connect(
                endpoint.address,
                identity=new_identity("engine", "intruder"),
                hello=HELLO,
                timeout=10,
                curve=CurveClient(server_pub, bad_pub, bad_sec),
            )
        # a plaintext client cannot talk to a CURVE server either
        with pytest.raises(ValueError, match="CURVE"):
            await DealerEndpoint.connect(endpoint.address, identity=b"plain", hello=HELLO)
        assert await sup.call("echo", "still fine", timeout=10) == "still fine"
        assert len(endpoint.peers) == 1
        await worker.aclose()
    finally:
        await endpoint.aclose()
