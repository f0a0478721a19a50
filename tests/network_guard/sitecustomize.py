"""Network guard for the notebook runs: any connection that leaves this machine is refused and logged.

The tests put this folder first on PYTHONPATH of the notebook kernels, so Python imports this
file at start-up (the `sitecustomize` hook), before any library. From then on every attempt to
connect a socket, or to look up a host name, that is not loopback (127.0.0.0/8, ::1, localhost)
or a Unix socket raises `NetworkGuardError` and appends a line to the file named by
COURSE_NETWORK_GUARD_LOG. Libraries may catch the error and fall back to a cache, so the tests
read the log afterwards: a run that tried to reach the network fails even if the notebook went on.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import traceback

_LOG = os.environ.get("COURSE_NETWORK_GUARD_LOG", "")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NetworkGuardError(ConnectionRefusedError):
    """A connection to a host other than this machine, refused by the tests' network guard."""


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0].lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: looking it up is already network traffic


def _refuse(what: str, target: object) -> None:
    stack = "".join(traceback.format_stack(limit=12)[:-2])
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{what} {target!r} refused; called from:\n{stack}\n")
    raise NetworkGuardError(f"network guard: {what} {target!r} refused (tests run offline; only loopback is allowed)")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _check_address(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        if not _is_loopback(address[0]):
            _refuse("connection to", address)


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(self, address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
    if not _is_loopback(host):
        _refuse("host name lookup of", host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
