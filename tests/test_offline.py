"""The offline guard in conftest.py works: it must be able to fail."""

import socket
import urllib.request

import pytest

from tests.conftest import NetworkAccessError


def test_a_download_attempt_fails_the_test():
    with pytest.raises(NetworkAccessError, match="reach the network"):
        urllib.request.urlopen("http://93.184.216.34/", timeout=1)


def test_loopback_is_allowed():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    server.close()
