"""uvicorn's HTTP/1.1 protocol (httptools), each answer leaving in one write.

uvicorn writes an answer's head when the app starts it and its body when the app sends it:
two ``send`` system calls, and with ``TCP_NODELAY`` (see :func:`.server.bind`) two segments
for the client to receive. On loopback a ``send`` is most of what the kernel does for a
request, and the profile of a worker under load (py-spy, ``benchmarks/service.py``) put
about a third of its time in uvicorn's ``send``. :class:`CoalescingProtocol` hands uvicorn
a transport that gathers the writes of one turn of the event loop and passes them on
together at the end of it: head and body (the app sends both without waiting) leave in one
call. Nothing else changes: flow control, closing and the rest go to the real transport,
and a close first passes on what was gathered.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """``transport`` whose writes of one event-loop turn leave in one ``write``."""

    __slots__ = ("_loop", "_pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self.transport, name)


class CoalescingProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol on a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        coalescing = CoalescingTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(coalescing)  # type: ignore[arg-type]
