"""The tests run where nothing can reach the network: a namespace with loopback only.

`make test`, `make test-all` and `make test-colab` start pytest through
tests/network_guard/loopback-only, which puts it (and the Argilla server, the kernels and the
commands it starts) in a network namespace of its own. The Python guard in sitecustomize.py only
sees Python's socket calls; these tests try what gets past it — a UDP datagram, the C `_socket`
module, a Python started with -I (no sitecustomize), a program that is not Python — and expect
each to fail with "Network is unreachable".

No test here sends anything before it has checked that loopback is the only interface: there is
then no route anywhere, so the attempts fail inside the kernel and nothing leaves the machine.
The address tried is 192.0.2.1 (TEST-NET-1, reserved for documentation: it belongs to nobody).
"""

from __future__ import annotations

import _socket
import errno
import os
import socket
import subprocess
import sys
import threading

import pytest

NOWHERE = ("192.0.2.1", 9)  # TEST-NET-1 (RFC 5737): no host has it


@pytest.fixture(scope="module", autouse=True)
def loopback_only() -> None:
    """Skip (a failure under CI) unless this process is inside the loopback-only namespace."""
    if os.environ.get("COURSE_LOOPBACK_ONLY") != "1":
        pytest.skip("not inside the loopback-only network namespace: run through `make test` "
                    "(tests/network_guard/loopback-only)")
    interfaces = [name for _, name in socket.if_nameindex()]
    assert interfaces == ["lo"], f"the namespace has interfaces besides loopback: {interfaces}"


def test_udp_datagram_cannot_leave() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(OSError) as refused:
            udp.sendto(b"hello", NOWHERE)
    assert refused.value.errno == errno.ENETUNREACH


def test_raw_socket_module_cannot_connect() -> None:
    raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)  # below the Python guard's patches
    try:
        with pytest.raises(OSError) as refused:
            raw.connect(NOWHERE)
        assert refused.value.errno == errno.ENETUNREACH
    finally:
        raw.close()


def test_isolated_python_and_other_programs_cannot_connect() -> None:
    """`python -I` skips sitecustomize (the Python guard); bash's /dev/tcp is no Python at all."""
    code = ("import socket, sys\n"
            "try:\n    socket.create_connection(('192.0.2.1', 9), timeout=5)\nexcept OSError as e:\n"
            "    sys.exit(0 if e.errno == 101 else 3)\nsys.exit(4)")
    assert subprocess.run([sys.executable, "-I", "-c", code], timeout=30).returncode == 0
    shell = subprocess.run(["bash", "-c", "exec 3<>/dev/tcp/192.0.2.1/9"], capture_output=True, text=True, timeout=30)
    assert shell.returncode != 0 and "unreachable" in shell.stderr.lower(), shell.stderr


def test_loopback_still_works() -> None:
    """The Argilla server, the local HTTP servers and the kernels talk over 127.0.0.1: that must work."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted: list[bytes] = []

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                accepted.append(connection.recv(16))

        thread = threading.Thread(target=answer)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"ping")
        thread.join(timeout=10)
    assert accepted == [b"ping"]
