"""Worker host: one plugin per process, served to the supervisor over RPC.

Entry point: ``python -m takopi.worker`` (:func:`takopi.worker.main.main`). Hosts:
:class:`~takopi.worker.engine.EngineHost`, :class:`~takopi.worker.transport.TransportHost`,
:class:`~takopi.worker.command.CommandHost`; proxies given to plugins live in
:mod:`takopi.worker.proxies`.
"""
