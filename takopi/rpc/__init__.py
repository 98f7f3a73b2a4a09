"""takopi wire protocol: ZeroMQ ROUTER/DEALER + msgpack RPC (see ARCHITECTURE.md §2).

Usage (supervisor)::

    endpoint = RouterEndpoint(ipc_address(make_runtime_dir(d), "sup"),
                              authenticate=check_hello, on_peer=..., on_peer_lost=...)
    endpoint.start()                      # binds now (refuses if a live supervisor answers)
    tg.start_soon(endpoint.serve)         # serves until cancelled
    peer = endpoint.peer(identity)        # after on_peer fired
    result = await peer.call("format_resume", token)

Usage (worker)::

    peer = await DealerEndpoint.connect(address, identity=new_identity("engine", "codex"),
                                        hello={"kind": "engine", "id": "codex",
                                               "distribution": "takopi", "secret": s})
    peer.register("format_resume", runner.format_resume)
    peer.register_stream("run", run_events)          # async generator function
    await peer.wait_closed()

Semantics every user must know:

* One Peer is bound to the event loop that created it (the *peer loop*); its socket is only
  touched from that loop's thread. ``call``/``notify``/``stream``/``ping`` may be awaited from
  **any** asyncio loop on any thread (a plugin's own ``anyio.run`` loop): the request is handed
  over with ``call_soon_threadsafe``. ``call_blocking`` is for plain threads (never call it on
  the peer loop's thread: ``RuntimeError``).
* Handlers registered with ``register``/``register_stream`` run on the peer loop (sync
  handlers inline). Pass ``loop=`` to run a handler on another thread's loop instead.
* Live objects travel by reference: instances of classes marked with
  :func:`mark_by_reference`, ``peer.export(obj)`` wrappers and plain callables found in
  arguments/results/stream items. The receiver gets a :class:`RemoteProxy`:
  ``await proxy.method(...)``, ``await proxy(...)`` (callables), ``proxy.call_blocking("m", ...)``,
  ``proxy.stream("m", ...)``; only public methods existing at export time are visible
  (``AttributeError`` otherwise, so ``getattr(proxy, "x", None)`` works) plus plain attribute
  snapshots given as ``export(obj, attrs={...})`` or a class attribute ``__rpc_attrs__``.
  A method call on an exported object runs **on the event loop that was running where it was
  exported** (e.g. a transport's own loop thread). Proxies are released when garbage-collected
  or when the peer goes away; a proxy sent back home decodes to the original object.
* Handler exceptions become :class:`RemoteError` (``code``, ``message``, ``retryable``,
  ``remote_traceback``, ``remote_type``); codes registered with :func:`register_error`
  (``config_error`` → ``takopi.config.ConfigError``, ``directive_error``,
  ``runner_unavailable``) are re-raised as the real class with the RemoteError as
  ``__cause__``. Unknown method → code ``unknown_method``; arguments not matching the
  handler's signature → ``bad_request``; calls with ``timeout=`` raise :class:`CallTimeout`
  (a ``TimeoutError``); peer loss fails everything pending with :class:`PeerGone`.

* Register handlers **synchronously**: in ``on_peer`` on the supervisor side, and right after
  ``DealerEndpoint.connect()`` returns on the worker side (frames that arrived together with
  the WELCOME are dispatched on the next loop iteration, so a request sent by the supervisor
  immediately after the handshake is not lost — but it needs its handler by then).
* Messages larger than ``max_frame_bytes`` (default 64 MiB) fail alone on the sender with
  ``ProtocolError(code="too_large")`` (results: ``RemoteError(code="too_large")``); a peer
  that still sends one is disconnected by ZeroMQ (``MAXMSGSIZE``) and seen as gone. Stream
  batches above 4 MiB are split into several frames.

Additions to the brief's API (no removals): ``Peer.wait_closed()``, ``Peer.aclose()``,
``Peer.close(exc)``, ``Peer.ping(timeout)``, ``Peer.identity``, ``Peer.exported_count``,
``Peer.max_frame_bytes``, ``register(..., loop=)``, ``RouterEndpoint.start()``/``aclose()``,
``RouterEndpoint.peers``/``refused_count``/``dropped_count``, ``HandshakeRefused``,
``CallTimeout``, ``register_error``, ``RemoteProxy``/``RemoteMethod``, ``Ref``,
``new_identity``, ``PROTOCOL_VERSION``. ``authenticate`` may return ``True`` (accept), a
``dict`` (accept; merged into the WELCOME that becomes the worker's ``peer.info``), ``False``
or a ``str`` (refuse; the string is the reason the worker's ``HandshakeRefused`` carries).
Proxy helpers are named ``rpc_call``/``rpc_notify``/``rpc_stream`` (plus the brief's
``call_blocking``) so they cannot shadow the remote object's own method names.
tcp:// is only accepted with CURVE: ``RouterEndpoint(..., curve=CurveServer(pub, sec,
allowed_client_keys=frozenset({client_pub})))`` and ``DealerEndpoint.connect(...,
curve=CurveClient(server_pub, pub, sec))`` (keys from :func:`curve_keypair`); a client key not
on the allow-list fails with ``HandshakeRefused``. Without ``curve=`` a tcp:// address is a
``ValueError``. ipc:// in a private runtime directory remains the default.
"""

from __future__ import annotations

from takopi.rpc.codec import (
    Ref,
    decode,
    encode,
    mark_by_reference,
    register_type,
    registered_names,
)
from takopi.rpc.curve import CurveClient, CurveServer, curve_keypair
from takopi.rpc.dealer import DealerEndpoint
from takopi.rpc.endpoint import RouterEndpoint
from takopi.rpc.envelope import PROTOCOL_VERSION
from takopi.rpc.errors import (
    CallTimeout,
    HandshakeRefused,
    PeerGone,
    ProtocolError,
    RemoteError,
    RpcError,
    register_error,
)
from takopi.rpc.peer import Peer
from takopi.rpc.proxy import RemoteMethod, RemoteProxy
from takopi.rpc.runtime import ipc_address, make_runtime_dir, new_identity

__all__ = [
    "PROTOCOL_VERSION",
    "CallTimeout",
    "CurveClient",
    "CurveServer",
    "DealerEndpoint",
    "HandshakeRefused",
    "Peer",
    "PeerGone",
    "ProtocolError",
    "Ref",
    "RemoteError",
    "RemoteMethod",
    "RemoteProxy",
    "RouterEndpoint",
    "RpcError",
    "curve_keypair",
    "decode",
    "encode",
    "ipc_address",
    "make_runtime_dir",
    "mark_by_reference",
    "new_identity",
    "register_error",
    "register_type",
    "registered_names",
]
