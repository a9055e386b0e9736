"""Shared test set-up: the tests run offline, and prove it.

Every test runs with a socket guard: a connection to anything but this machine
(loopback, Unix sockets) raises ``NetworkAccessError`` naming the address, so a
code path that tries to download (a model hub, a dataset server, nltk.download)
fails the test instead of silently needing the internet. Kernels and servers the
tests start on 127.0.0.1 are unaffected.
"""

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class NetworkAccessError(RuntimeError):
    pass


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need a DNS lookup


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(real):
        def connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
                raise NetworkAccessError(f"a test tried to reach the network: {address!r}")
            return real(sock, address)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))
