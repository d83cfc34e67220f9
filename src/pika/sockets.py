"""The listening sockets of `serve --workers N`: how N processes share one HTTP and one live port.

Where the OS has SO_REUSEPORT (Linux, the BSDs, macOS) every worker binds its own socket to the
same port and the kernel spreads new connections over them; a dead worker's socket leaves the
group with it.  Elsewhere the supervisor opens one listening socket per port before it starts
the workers, and each inherits it and accepts on it (the kernel hands each connection to one).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

REUSE_PORT = hasattr(socket, "SO_REUSEPORT")
BACKLOG = 4096


def tcp_socket(host: str, port: int, *, reuse_port: bool, listen: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port), listening unless `listen` is False (a bound socket
    that does not listen only holds the port: the kernel sends it no connection)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class Listeners:
    """One process's two listening sockets: HTTP (hypercorn) and the live WebSocket port."""

    http: socket.socket
    live: socket.socket

    @property
    def ports(self) -> tuple[int, int]:
        return self.http.getsockname()[1], self.live.getsockname()[1]

    def fds(self) -> tuple[int, int]:
        return self.http.fileno(), self.live.fileno()

    def close(self) -> None:
        self.http.close()
        self.live.close()

    @classmethod
    def bind(
        cls, host: str, http_port: int, live_port: int, *, reuse_port: bool, listen: bool = True
    ) -> Listeners:
        http = tcp_socket(host, http_port, reuse_port=reuse_port, listen=listen)
        try:
            live = tcp_socket(host, live_port, reuse_port=reuse_port, listen=listen)
        except BaseException:
            http.close()
            raise
        return cls(http, live)

    @classmethod
    def inherited(cls, http_fd: int, live_fd: int) -> Listeners:
        """The supervisor's sockets, inherited by a worker (the fallback without SO_REUSEPORT)."""
        return cls(socket.socket(fileno=http_fd), socket.socket(fileno=live_fd))
