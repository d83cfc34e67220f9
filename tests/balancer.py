"""A round-robin TCP balancer for tests: what a load balancer (nginx `stream`, HAProxy in TCP
mode) does in front of several server processes, so the protocol tests can run against a pair
(issue 17).  Each accepted connection goes to the next backend; bytes are copied both ways
unchanged, and both sides close together when either does."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import trio

_CHUNK = 65536


class Balancer:
    """Listens on 127.0.0.1 (any free port) and hands connection n to backend n mod len."""

    def __init__(self, listeners: Sequence[trio.SocketListener]) -> None:
        self.listeners = listeners
        self.port: int = listeners[0].socket.getsockname()[1]
        self.backends: list[int] = []  # ports on 127.0.0.1, set before the first connection
        self._next = itertools.count()

    @classmethod
    async def bind(cls) -> Balancer:
        return cls(await trio.open_tcp_listeners(0, host="127.0.0.1"))

    async def run(
        self, backends: Sequence[int], task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled, in front of `backends`."""
        self.backends = list(backends)
        await trio.serve_listeners(self._relay, self.listeners, task_status=task_status)

    async def _relay(self, client: trio.SocketStream) -> None:
        port = self.backends[next(self._next) % len(self.backends)]
        try:
            backend = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await client.aclose()  # the backend is down: the client sees its connection closed
            return
        async with client, backend, trio.open_nursery() as nursery:
            nursery.start_soon(_copy, client, backend, nursery.cancel_scope)
            nursery.start_soon(_copy, backend, client, nursery.cancel_scope)


async def _copy(source: trio.SocketStream, sink: trio.SocketStream, both: trio.CancelScope) -> None:
    """Copy until `source` ends or either side breaks, then end both directions."""
    try:
        while chunk := await source.receive_some(_CHUNK):
            await sink.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    both.cancel()
