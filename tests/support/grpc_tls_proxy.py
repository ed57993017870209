"""A secured Temporal for the tests: Debian's nginx terminating TLS in front of the
dev server (``grpc_pass``), as a self-hosted cluster's ingress or Temporal Cloud
would present it, with certificates made on the spot by trustme.

One nginx process serves several ports, each a different policy (plain TLS, mutual
TLS, an API key checked as Temporal Cloud checks one, a certificate for another
name), so one start covers every test of a module.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.net import free_port

# The name the "named" port's certificate carries, and nothing else (no IP address):
# reaching it at 127.0.0.1 needs AFTERCARE_TEMPORAL_TLS_SERVER_NAME.
OTHER_NAME = "temporal.aftercare.test"


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """A CA and what it issued, and a stranger CA that nobody here trusts."""

    ca_file: Path
    server: Pem  # 127.0.0.1 and localhost
    named_server: Pem  # OTHER_NAME only
    client: Pem  # what mutual TLS accepts
    stranger_ca_file: Path
    stranger_client: Pem  # a client certificate from the stranger CA


def _write_leaf(folder: Path, stem: str, leaf: trustme.LeafCert) -> Pem:
    cert, key = folder / f"{stem}.crt", folder / f"{stem}.key"
    # The leaf first, then any intermediates: what nginx and the SDK both expect.
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    return Pem(cert, key)


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca, stranger = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.crt"))
    stranger.cert_pem.write_to_path(str(folder / "stranger-ca.crt"))
    return Pki(
        ca_file=folder / "ca.crt",
        server=_write_leaf(folder, "server", ca.issue_cert("127.0.0.1", "localhost")),
        named_server=_write_leaf(folder, "named-server", ca.issue_cert(OTHER_NAME)),
        client=_write_leaf(folder, "client", ca.issue_cert("aftercare-worker.example")),
        stranger_ca_file=folder / "stranger-ca.crt",
        stranger_client=_write_leaf(
            folder, "stranger-client", stranger.issue_cert("intruder.example")
        ),
    )


@dataclass(frozen=True)
class TlsProxy:
    """Addresses of the proxy's ports, each in front of the same Temporal."""

    tls: str  # TLS, any client
    mutual: str  # TLS, a client certificate from the Pki's CA required
    api_key: str  # TLS, "authorization: Bearer <api key>" required (gRPC UNAUTHENTICATED)
    api_key_http: str  # the same check answered HTTP 401, as a generic auth proxy does
    named: str  # TLS with a certificate for OTHER_NAME only
    key: str  # the one API key accepted
    error_log: Path


def nginx_binary() -> str:
    """nginx, or a failed test saying how to get it: `make test` installs it, and a
    missing proxy must not pass as a skipped test."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(
            "nginx is not installed: the TLS tests put Debian's nginx in front of Temporal. "
            "`make nginx` (part of `make test`) installs it: apt-get install -y nginx"
        )
    return found


def _config(folder: Path, upstream: str, pki: Pki, key: str, ports: dict[str, int]) -> str:
    def server(port: int, pem: Pem, extra: str = "", location: str = "") -> str:
        return f"""
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {pem.cert};
        ssl_certificate_key {pem.key};
        {extra}
        location / {{
            {location}
            grpc_pass grpc://{upstream};
        }}
        location @unauthenticated {{
            # A gRPC answer with no message (trailers only): status 16 is
            # UNAUTHENTICATED, what Temporal Cloud answers a missing or wrong key.
            default_type application/grpc;
            add_header grpc-status 16 always;
            add_header grpc-message "invalid API key" always;
            return 200;
        }}
    }}"""

    mutual = f"ssl_client_certificate {pki.ca_file};\n        ssl_verify_client on;"
    # 418 is only an internal hop to the named location that writes the gRPC status.
    grpc_refusal = "error_page 418 = @unauthenticated;"
    key_check = f'if ($http_authorization != "Bearer {key}") {{ return 418; }}'
    http_check = f'if ($http_authorization != "Bearer {key}") {{ return 401; }}'
    # Workers hold a poll open for up to 70 s: the proxy must wait longer than that,
    # and pass bodies up to gRPC's 4 MiB (nginx's default cap is 1 MiB).
    return f"""
daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log notice;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    client_max_body_size 8m;
    grpc_read_timeout 300s;
    grpc_send_timeout 300s;
{server(ports["tls"], pki.server)}
{server(ports["mutual"], pki.server, mutual)}
{server(ports["api_key"], pki.server, grpc_refusal, key_check)}
{server(ports["api_key_http"], pki.server, "", http_check)}
{server(ports["named"], pki.named_server)}
}}
"""


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def grpc_tls_proxy(folder: Path, upstream: str, pki: Pki, key: str) -> Iterator[TlsProxy]:
    """nginx on free ports in front of ``upstream`` (host:port of a plaintext Temporal),
    its configuration and logs under ``folder``; stopped at the end."""
    binary = nginx_binary()
    folder.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("tls", "mutual", "api_key", "api_key_http", "named")}
    config = folder / "nginx.conf"
    config.write_text(_config(folder, upstream, pki, key, ports))
    error_log, output = folder / "error.log", folder / "nginx.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [binary, "-p", str(folder), "-c", str(config), "-e", str(error_log)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 15
        while not all(_listening(port) for port in ports.values()):
            if process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with code {process.returncode}: {output.read_text()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen within 15 s; see {error_log}")
            time.sleep(0.05)

        def at(name: str) -> str:
            return f"127.0.0.1:{ports[name]}"

        yield TlsProxy(
            tls=at("tls"),
            mutual=at("mutual"),
            api_key=at("api_key"),
            api_key_http=at("api_key_http"),
            named=at("named"),
            key=key,
            error_log=error_log,
        )
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown, workers included
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
