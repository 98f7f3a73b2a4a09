"""The modules every worker imports, named in one place: the fork server preloads them before
its first fork, and a supervisor about to fork the fork server from itself imports them first
(:mod:`takopi.supervisor.early`), so that the supervisor, the fork server and every worker share
their pages copy-on-write."""

from __future__ import annotations


def import_worker_stack() -> None:
    """Import the worker stack (no side effect beyond the imports and the entry-point cache)."""
    import anyio  # noqa: F401

    import takopi.api
    import takopi.engines
    import takopi.model
    import takopi.rpc
    import takopi.runner
    import takopi.worker.engine
    import takopi.worker.proxies
    from takopi.plugins import ENGINE_GROUP, list_entrypoints

    list_entrypoints(ENGINE_GROUP)  # warms importlib.metadata
    import takopi.backends
    import takopi.config
    import takopi.events
    import takopi.runners.run_options
    import takopi.utils.paths  # noqa: F401


__all__ = ["import_worker_stack"]
