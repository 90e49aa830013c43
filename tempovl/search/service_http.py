"""Read timeouts for `tempovl serve`: a client must send a request's head within `header_timeout`
seconds and its body within `body_timeout` seconds, or the connection is closed (408 first when the
client had started the request).

uvicorn closes idle keep-alive connections but has no header or body read timeout: a client that sends
half a request head, or a Content-Length and then nothing, holds a connection (and, for a body, a
waiting request) for as long as it likes. :class:`TimedH11Protocol` is uvicorn's h11 protocol with one
read deadline, armed whenever the server is waiting for the client: from the connection's start (or the
end of the previous response) until the request head is in, then from the head until the body is in.
While the app works on a complete request nothing is armed, so a slow search is never cut off here.
"""

from __future__ import annotations

import asyncio
import json

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body read deadlines (module docstring). The deadlines are
    class attributes: :func:`server_config` makes a subclass with the configured ones."""

    header_timeout: float = HEADER_TIMEOUT_S
    body_timeout: float = BODY_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None  # "head" | "body" | None (the app has the whole request)
        self._head_bytes = False  # the client has sent part of the next request head
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        if self._waiting_for == "head":
            self._head_bytes = True
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _watch(self) -> None:
        """Arm, keep or drop the read deadline for what the connection now waits for."""
        if self.transport.is_closing():
            return self._disarm()
        their = self.conn.their_state
        if their is h11.IDLE and self.conn.our_state is h11.IDLE:
            waiting_for = "head"
        elif their is h11.SEND_BODY:
            waiting_for = "body"
        else:  # the request is in (DONE), or the connection is ending
            waiting_for = None
        if waiting_for == self._waiting_for:
            return  # the deadline runs from when this wait began
        self._disarm()
        if waiting_for is None:
            return
        if waiting_for == "head":
            self._head_bytes = False
        timeout = self.header_timeout if waiting_for == "head" else self.body_timeout
        self._waiting_for = waiting_for
        self._deadline = self.loop.call_later(timeout, self._timed_out, waiting_for)

    def _timed_out(self, waiting_for: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        started = waiting_for == "body" or self._head_bytes
        if started and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            timeout = self.header_timeout if waiting_for == "head" else self.body_timeout
            self._send_408(f"the request {waiting_for} did not arrive within {timeout:g} s")
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's receive() answers http.disconnect
            self.cycle.message_event.set()
        self.transport.close()

    def _send_408(self, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        # a raw response: h11 refuses to answer a request whose head it has not parsed
        head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        self.transport.write(head + b"\r\n" + body)


def server_config(
    app,
    host: str = "127.0.0.1",
    port: int = 8000,
    header_timeout: float = HEADER_TIMEOUT_S,
    body_timeout: float = BODY_TIMEOUT_S,
    **kwargs,
) -> uvicorn.Config:
    """The uvicorn configuration `tempovl serve` runs (and the tests' live servers): the timed h11
    protocol with these read deadlines (seconds, > 0)."""
    if not header_timeout > 0 or not body_timeout > 0:
        raise ValueError(f"read timeouts must be > 0 s, got header {header_timeout}, body {body_timeout}")
    protocol = type(
        "TimedH11Protocol",
        (TimedH11Protocol,),
        {"header_timeout": float(header_timeout), "body_timeout": float(body_timeout)},
    )
    kwargs.setdefault("log_level", "warning")
    return uvicorn.Config(app, host=host, port=port, http=protocol, **kwargs)
