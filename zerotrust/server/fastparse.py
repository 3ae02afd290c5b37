"""The connection deadline over httptools: uvicorn's C parser (llhttp), several times
cheaper per request than h11. Imported only when httptools is installed."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from zerotrust.server.connections import Deadline

__all__ = ["MAX_INCOMPLETE_HEAD_BYTES", "DeadlineHttpToolsProtocol"]

#: llhttp buffers a head of any size; h11 refuses an incomplete one beyond 16 KiB (400).
#: The same bound here, so a client cannot make the server hold megabytes of headers
#: until the deadline (a complete head over 16 KiB is refused by the app, 431).
MAX_INCOMPLETE_HEAD_BYTES = 16 * 1024


class HeadTooLarge(ValueError):
    """Raised in a parser callback: httptools turns it into a parser error (400)."""


class DeadlineHttpToolsProtocol(Deadline, HttpToolsProtocol):  # type: ignore[misc]
    """:class:`~zerotrust.server.connections.Deadline` over httptools."""

    _head_bytes = 0

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF, as on the wire
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_INCOMPLETE_HEAD_BYTES:
            raise HeadTooLarge("request head too large")

    def _parsed_ahead(self) -> bool:
        return bool(self.pipeline)
