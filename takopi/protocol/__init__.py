"""Typed messages between the supervisor and its workers (ARCHITECTURE.md §2).

Every value below is a frozen dataclass registered in the RPC codec under its class name, so
it crosses the wire as itself (fields matched by name: a peer with an extra or a missing field
still decodes). Requests take one message and answer one message:

==========================  ===================  ===================================================
method                      direction            request → answer
==========================  ===================  ===================================================
HELLO (handshake frame)     worker → supervisor  :class:`Hello` (a plain map, frozen layout)
``load`` (engine)           sup → engine         :class:`EngineLoad` → :class:`EngineLoaded` |
                                                 :class:`LoadFailed`
engine probe (pipes)        sup → probe process  :class:`EngineProbe` → :class:`EngineProbed` …
``run`` (stream, engine)    sup → engine         :class:`EngineRun` → takopi events
``load`` (transport)        sup → transport      :class:`TransportLoad` → :class:`TransportLoaded`
                                                 | :class:`LoadFailed`
``check_setup``             sup → transport      :class:`SetupCheck` → :class:`SetupReport`
``start``                   sup → transport      :class:`TransportStart` → :class:`TransportStarted`
``load`` (command)          sup → command        :class:`CommandLoad` → :class:`CommandLoaded` |
                                                 :class:`LoadFailed`
``handle``                  sup → command        :class:`CommandInvocation` → ``CommandResult``
``runtime.changed`` (notif) sup → transport/cmd  :class:`RuntimeSnapshot`
``run`` (stream)            transport → sup      :class:`StartRun` → :class:`ResumeLine`, events
``runtime.resolve_runner``  transport → sup      → :class:`RunnerChoice`
``runtime.pending_deliv…``  transport → sup      → ``list[`` :class:`Delivery` ``]``
``command.describe``        transport → sup      command id → :class:`CommandDescription`
``command.handle``          transport → sup      command id, :class:`CommandInvocation`
==========================  ===================  ===================================================

The remaining ``runtime.*`` / ``engine.*`` methods mirror ``TransportRuntime`` and runner
methods with their own (takopi.api) argument and result types. This package imports nothing
beyond the standard library at run time: plugins may use :class:`Delivery`.
"""

from __future__ import annotations

from takopi.protocol.commands import CommandDescription, CommandInvocation
from takopi.protocol.delivery import INTERRUPTED_ERROR, Delivery, DeliveryStatus
from takopi.protocol.hello import Hello
from takopi.protocol.loading import (
    CommandLoad,
    CommandLoaded,
    EngineDescription,
    EngineLoad,
    EngineLoaded,
    EngineProbe,
    EngineProbed,
    EngineStatus,
    LoadFailed,
    SetupCheck,
    SetupProblem,
    SetupReport,
    TransportLoad,
    TransportLoaded,
    TransportStart,
    TransportStarted,
)
from takopi.protocol.runs import EngineRun, ResumeLine, RunAddress, RunnerChoice, StartRun
from takopi.protocol.snapshot import ResumeCodecInfo, RuntimeSnapshot

WIRE_TYPES: tuple[type, ...] = (
    CommandDescription,
    CommandInvocation,
    CommandLoad,
    CommandLoaded,
    Delivery,
    EngineDescription,
    EngineLoad,
    EngineLoaded,
    EngineProbe,
    EngineProbed,
    EngineRun,
    LoadFailed,
    ResumeCodecInfo,
    ResumeLine,
    RunAddress,
    RunnerChoice,
    RuntimeSnapshot,
    SetupCheck,
    SetupProblem,
    SetupReport,
    StartRun,
    TransportLoad,
    TransportLoaded,
    TransportStart,
    TransportStarted,
)
"""Every message type the codec must know (registered under its class name)."""

__all__ = [
    "INTERRUPTED_ERROR",
    "WIRE_TYPES",
    "CommandDescription",
    "CommandInvocation",
    "CommandLoad",
    "CommandLoaded",
    "Delivery",
    "DeliveryStatus",
    "EngineDescription",
    "EngineLoad",
    "EngineLoaded",
    "EngineProbe",
    "EngineProbed",
    "EngineRun",
    "EngineStatus",
    "Hello",
    "LoadFailed",
    "ResumeCodecInfo",
    "ResumeLine",
    "RunAddress",
    "RunnerChoice",
    "RuntimeSnapshot",
    "SetupCheck",
    "SetupProblem",
    "SetupReport",
    "StartRun",
    "TransportLoad",
    "TransportLoaded",
    "TransportStart",
    "TransportStarted",
]
