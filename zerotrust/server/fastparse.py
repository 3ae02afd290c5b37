"""The connection deadline over httptools: uvicorn's C parser (llhttp), several times
cheaper per request than h11. Imported only when httptools is installed."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from zerotrust.server.connections import Deadline

__all__ = ["MAX_INCOMPLETE_HEAD_BYTES", "DeadlineHttpToolsProtocol"]

#: llhttp buffers a head of any size (httptools gathers a header's pieces itself, and
#: calls back only once one is whole); h11 refuses an incomplete one beyond 16 KiB
#: (400). The same bound here, so a client cannot make the server hold megabytes of
#: headers until the deadline. A complete head over 16 KiB is refused by the app (431).
MAX_INCOMPLETE_HEAD_BYTES = 16 * 1024


class DeadlineHttpToolsProtocol(Deadline, HttpToolsProtocol):  # type: ignore[misc]
    """:class:`~zerotrust.server.connections.Deadline` over httptools.

    A head is counted by the reads that carry it after the one it began in (the parser
    says where a request begins, not at which byte): so at most one read (the loop's
    buffer) and 16 KiB, and pipelined requests, each beginning in a read, never add up.
    """

    _head_bytes = 0  # read since the head in progress began, after its first read
    _in_head = True  # whether the parser is between requests or inside a head
    _began = False  # whether a request began in the read being parsed

    def data_received(self, data: bytes) -> None:
        self._began = False
        super().data_received(data)
        if not self._in_head:
            return
        if self._began:
            self._head_bytes = 0
        else:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_INCOMPLETE_HEAD_BYTES and not self.transport.is_closing():
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Request line and headers too large.")

    def on_message_begin(self) -> None:
        self._began = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        super().on_message_complete()

    def _parsed_ahead(self) -> bool:
        return bool(self.pipeline)
