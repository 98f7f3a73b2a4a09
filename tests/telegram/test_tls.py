"""The transport's HTTPS trust: the system's hashed CA directory, read lazily, when there is
one; httpx's own choice otherwise. Real certificates (made with the ``openssl`` CLI) and a real
TLS server on 127.0.0.1."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from takopi.telegram.tls import https_verify


def _openssl(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is needed (scripts/ci-system-deps.sh installs it)")
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=takopi test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    _openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    _openssl(
        "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf",
        cwd=d,
    )  # fmt: skip
    hashed = d / "hashed"
    hashed.mkdir()
    digest = _openssl("x509", "-hash", "-noout", "-in", "ca.pem", cwd=d).strip()
    shutil.copy(d / "ca.pem", hashed / f"{digest}.0")
    plain = d / "plain"
    plain.mkdir()
    shutil.copy(d / "ca.pem", plain / "ca.pem")
    return d


@pytest.fixture(scope="module")
def server(pki: Path) -> Iterator[str]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "srv.pem", pki / "srv.key")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_a_hashed_system_directory_is_trusted_and_read_only_when_needed(
    pki: Path, server: str
) -> None:
    verify = https_verify({}, system_capath=str(pki / "hashed"))
    assert isinstance(verify, ssl.SSLContext)
    assert verify.cert_store_stats()["x509_ca"] == 0  # nothing parsed up front
    with httpx.Client(verify=verify, trust_env=False) as client:
        assert client.get(server).text == "ok"
    assert verify.cert_store_stats()["x509_ca"] == 1  # the one authority the chain named


def test_without_a_hashed_directory_httpx_decides_and_still_verifies(
    pki: Path, server: str
) -> None:
    verify = https_verify({}, system_capath=str(pki / "plain"))
    assert verify is True
    assert https_verify({}, system_capath=str(pki / "missing")) is True
    with httpx.Client(verify=verify, trust_env=False) as client, pytest.raises(httpx.ConnectError):
        client.get(server)  # our test CA is in no default bundle: refused


@pytest.mark.parametrize("name", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_an_explicit_ssl_cert_variable_is_left_to_httpx(pki: Path, name: str) -> None:
    value = str(pki / "ca.pem") if name == "SSL_CERT_FILE" else str(pki / "hashed")
    environ = {name: value}
    assert https_verify(environ, system_capath=str(pki / "hashed")) is True
