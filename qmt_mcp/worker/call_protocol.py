"""The worker's HTTP connections: its own calls read and answered without h11.

Every tool call is one `POST /v1/<call>` from the MCP server (server/wire.py), with a small JSON
body and a Content-Length, answered with one JSON body. uvicorn's h11 protocol spends about 0.2 ms
parsing such a request and about as much again framing its answer (h11's state machine, event
objects, header validation) — close to half a millisecond of every call an agent waits for. This
protocol is uvicorn's h11 protocol with that one shape taken off its hands:

- a request is ours only when it arrives while the connection is idle (no h11 request open, nothing
  buffered in h11) and is exactly `POST /v1/... HTTP/1.1` with a decimal Content-Length within the
  app's MAX_BODY, no Transfer-Encoding, Expect or Upgrade, no query and no folded header line;
- ours are handed to the same ASGI app with the scope uvicorn would build, and answered with the
  app's status, headers and body in one write; bytes that arrive while one is answered wait
  (HTTP/1.1 answers in order);
- everything else — the event and quote streams (GET), a chunked or oversized body, anything
  malformed — goes to h11 exactly as it arrived, so its answers (400, 413, 405…) stay uvicorn's.

Keep-alive timeout, graceful shutdown (an answer under way finishes first) and the server's task
and request counts are kept as h11's path keeps them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .api import MAX_BODY  # a larger body is h11's: the app refuses it (413) before it is all sent

log = logging.getLogger("qmt_mcp.worker")

MAX_HEAD = 16 * 1024   # a head still incomplete at this size is h11's to refuse
_PREFIX = b"POST /v1/"
_REFUSED_HEADERS = (b"transfer-encoding", b"expect", b"upgrade")
# What h11 accepts, narrowed: the target is a plain path (no query, fragment or escape), a header's
# name a token and its value visible bytes with inner spaces or tabs (RFC 9110's field-value).
_REQUEST_LINE = re.compile(rb"POST (/v1/[!$&'()*+,\-./0-9:;=@A-Z_a-z~]*) HTTP/1\.1")
_HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x21-\x7e\x80-\xff](?:[\x20-\x7e\x80-\xff\t]*"
                     rb"[\x21-\x7e\x80-\xff])?)?[ \t]*")


@dataclass
class CallRequest:
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    close: bool          # the client asked to close after the answer
    size: int            # head and body, in bytes


class _NotOurs(Exception):
    """The bytes are a request (or garbage) for h11."""


def parse_call(buf: bytes | bytearray) -> CallRequest | None:
    """The request at the start of `buf`, if it is a call this protocol answers; None while more bytes
    are needed to tell. Raises _NotOurs when the bytes belong to h11: whatever h11 would read
    differently (a bare LF or CR, which h11 takes as a line end; a header h11 would refuse) is h11's,
    so the two can never split one stream of bytes into different requests."""
    if not buf.startswith(_PREFIX[:len(buf)]):
        raise _NotOurs
    end = buf.find(b"\r\n\r\n")
    head = buf[:end] if end >= 0 else buf[:-1] if buf.endswith(b"\r") else buf
    if head.count(b"\n") != head.count(b"\r\n") or head.count(b"\r") != head.count(b"\r\n"):
        raise _NotOurs
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise _NotOurs
        return None
    lines = bytes(head).split(b"\r\n")
    target = _REQUEST_LINE.fullmatch(lines[0])
    if target is None:
        raise _NotOurs
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    close = host = False
    for line in lines[1:]:
        field = _HEADER.fullmatch(line)
        if field is None:
            raise _NotOurs
        name, value = field[1].lower(), field[2] or b""
        if name in _REFUSED_HEADERS:
            raise _NotOurs
        if name == b"content-length":
            if not (value.isdigit() and len(value) <= 12) or (length is not None and int(value) != length):
                raise _NotOurs
            length = int(value)
        elif name == b"connection":
            close = close or b"close" in (token.strip().lower() for token in value.split(b","))
        elif name == b"host":
            host = True
        headers.append((name, value))
    if length is None or length > MAX_BODY or not host:
        raise _NotOurs
    start = end + 4
    if len(buf) < start + length:
        return None
    return CallRequest(target[1].decode("ascii"), headers, bytes(buf[start:start + length]), close, start + length)


@dataclass
class _Answer:
    """What the app sent for one call."""
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    started: bool = False
    complete: bool = False


def _head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class CallProtocol(H11Protocol):
    """uvicorn's h11 protocol, with the worker's calls answered on a shorter path (module docstring).
    For `uvicorn.Config(..., http=CallProtocol)`."""

    _held: bytearray | None = None      # bytes not yet handed to a call or to h11
    _busy = False                       # one of our calls is being answered
    _closing = False                    # close once the call under way is answered
    _gone: asyncio.Event                # set when the connection is lost (made with it)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._gone = asyncio.Event()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._held is None and not self._h11_idle():
            super().data_received(data)
            return
        if self._held is None:
            self._held = bytearray()
        self._held += data
        if self._busy and len(self._held) > MAX_HEAD + MAX_BODY:
            self.flow.pause_reading()   # a client sending ahead this much waits for the answer under way
        self._next()

    def _h11_idle(self) -> bool:
        return ((self.cycle is None or self.cycle.response_complete)
                and self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE
                and not self.conn.trailing_data[0])

    def _next(self) -> None:
        """Start the call at the head of what is held, or hand everything held to h11."""
        held = self._held
        if self._busy or held is None or self.transport.is_closing():
            return
        try:
            req = parse_call(held)
        except _NotOurs:
            self._held = None
            super().data_received(bytes(held))
            return
        if req is None:
            return
        del held[:req.size]
        if not held:
            self._held = None
        self._busy = True
        task = self.loop.create_task(self._answer(req))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, req: CallRequest) -> None:
        answer = _Answer()
        delivered = False
        gone = self._gone

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": req.body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and not answer.started:
                answer.started = True
                answer.status = int(message["status"])
                answer.headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body" and answer.started and not answer.complete:
                answer.body += message.get("body", b"")
                answer.complete = not message.get("more_body", False)
            else:
                raise RuntimeError(f"unexpected ASGI message {message['type']!r} for a call")

        scope = {
            "type": "http", "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1", "server": self.server, "client": self.client, "scheme": self.scheme,
            "method": "POST", "root_path": self.root_path, "path": self.root_path + req.path,
            "raw_path": (self.root_path + req.path).encode("ascii"), "query_string": b"",
            "headers": req.headers, "state": self.app_state.copy(),
        }
        close = req.close or self._closing
        try:
            await self.app(scope, receive, send)
            if not answer.complete:
                raise RuntimeError("the app returned without a whole answer")
        except BaseException as exc:
            if not isinstance(exc, Exception):
                self.transport.close()
                raise
            log.error("exception in the worker's app answering POST %s", req.path, exc_info=exc)
            answer = _Answer(500, [(b"content-type", b"text/plain; charset=utf-8")],
                             bytearray(b"Internal Server Error"), True, True)
            close = True
        self._write(answer, close or self._closing)
        if self.flow.write_paused and not self.transport.is_closing():
            await self.flow.drain()
        self._busy = False
        self.server_state.total_requests += 1
        if self._closing:   # a shutdown came while the answer drained
            self.transport.close()
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        self._next()
        if not self._busy and self._h11_idle() and not self.transport.is_closing():
            # Idle, as h11 leaves a connection after an answer (a partial request held included: its
            # rest arriving unsets this, as it would h11's); h11 arms its own once it answers.
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

    def _write(self, answer: _Answer, close: bool) -> None:
        if self.transport.is_closing():
            return
        names = {name for name, _ in answer.headers}
        headers = [*self.server_state.default_headers, *answer.headers]
        if b"content-length" not in names:
            headers.append((b"content-length", str(len(answer.body)).encode()))
        if close and b"connection" not in names:
            headers.append((b"connection", b"close"))
        self.transport.write(_head(answer.status, headers) + answer.body)
        if close or any(name == b"connection" and b"close" in value.lower() for name, value in answer.headers):
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone.set()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._busy:
            self._closing = True   # the answer under way is written, then the connection closed
            return
        super().shutdown()
