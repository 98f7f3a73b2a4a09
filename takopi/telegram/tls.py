"""Which certificate authorities the transport's HTTPS clients trust.

httpx's default loads certifi's whole bundle into every client's SSL context up front (~1.5 MiB
of parsed certificates held for the life of the process). Where the system keeps its trust
store as an OpenSSL hashed directory (``c_rehash``; Debian, Ubuntu, Alpine…), that directory is
used instead: OpenSSL then reads only the authority a server's chain names, when it is needed
— what httpx itself does when ``SSL_CERT_DIR`` is set. An explicit ``SSL_CERT_FILE`` or
``SSL_CERT_DIR`` is left to httpx, and without a hashed system directory certifi stays.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping

_HASHED_NAME = re.compile(r"^[0-9a-f]{8}\.\d+$")


def _is_hashed_store(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(_HASHED_NAME.match(entry.name) for entry in entries)
    except OSError:
        return False


_process_verify: ssl.SSLContext | bool | None = None


def https_verify(
    environ: Mapping[str, str] | None = None, system_capath: str | None = None
) -> ssl.SSLContext | bool:
    """The ``verify`` argument for an ``httpx`` client: a context verifying against the
    system's hashed CA directory, loaded lazily, or ``True`` (httpx's own choice). Without
    arguments (this process's environment and system) the answer is made once and shared."""
    global _process_verify
    if environ is None and system_capath is None:
        if _process_verify is None:
            _process_verify = _choose(os.environ, None)
        return _process_verify
    return _choose(os.environ if environ is None else environ, system_capath)


def _choose(env: Mapping[str, str], system_capath: str | None) -> ssl.SSLContext | bool:
    if env.get("SSL_CERT_FILE") or env.get("SSL_CERT_DIR"):
        return True
    capath = (
        system_capath
        if system_capath is not None
        else ssl.get_default_verify_paths().openssl_capath
    )
    if not _is_hashed_store(capath):
        return True
    return ssl.create_default_context(capath=capath)


__all__ = ["https_verify"]
