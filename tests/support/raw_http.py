"""HTTP/1.1 requests written by hand on a socket, for what an HTTP client library
will not do: announce a body and never send it, or stream a chunked body of a
chosen shape. The answer is read as soon as the server gives it, so a server
that waits for the body it should not read makes the call time out."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

# Long enough for a loaded CI machine, short enough that a server stuck reading
# a body that never comes fails the test instead of hanging it.
ANSWER_SECONDS = 5.0


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


def chunked(*parts: bytes, last: bool = True) -> bytes:
    """``parts`` in chunked transfer coding; ``last`` adds the terminating chunk."""
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts if part)
    return encoded + (b"0\r\n\r\n" if last else b"")


async def raw_request(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    *,
    seconds: float = ANSWER_SECONDS,
) -> RawAnswer:
    """Send the request line, ``headers`` (Host is added) and ``body`` exactly as
    given, then read the answer without sending anything more."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return await asyncio.wait_for(_answer(reader), seconds)
    finally:
        writer.close()
        # The server may already have closed its side.
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _answer(reader: asyncio.StreamReader) -> RawAnswer:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return RawAnswer(status, headers, body)
