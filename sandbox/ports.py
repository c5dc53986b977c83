"""Loopback ports: pick free ones, and say clearly who holds one that is taken."""

from __future__ import annotations

import contextlib
import socket

import psutil

from sandbox.errors import ServiceError

LOOPBACK = "127.0.0.1"


def http_url(port: int, host: str = LOOPBACK) -> str:
    """A service's base URL (every sandbox service speaks plain HTTP on loopback)."""
    return f"http://{host}:{port}"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports that are free right now.

    All sockets stay bound until every port is chosen, so the kernel never hands out the same
    port twice within one call.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when binding ``host:port`` fails, i.e. something listens there (or is about to)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR mirrors what the servers do, so TIME_WAIT leftovers do not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> str:
    """A short description of the process listening on ``port``, or '' when unknown."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3])[:120]})"
                return f"pid {conn.pid}"
    return ""


def ensure_port_free(port: int, service: str, host: str = LOOPBACK) -> None:
    """Raise a ServiceError naming the holder when ``port`` is taken."""
    if port_in_use(port, host):
        holder = port_holder(port)
        raise ServiceError(
            f"Port {host}:{port} for {service} is already in use{' by ' + holder if holder else ''}.",
            "Stop whatever holds it, or leave the port unset so the sandbox picks a free one "
            "(a fixed port comes from the `ports` option / --port flags).",
        )
