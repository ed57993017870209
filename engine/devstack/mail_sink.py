"""A local SMTP server (aiosmtpd) that keeps every email it receives as an .eml file.

It stands in for a real mail server during development and tests, so a person can
open exactly what a customer would get.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class ReceivedMail:
    path: Path | None
    mail_from: str
    recipients: list[str]
    content: bytes
    received_at: datetime

    @cached_property
    def message(self) -> EmailMessage:
        # Parsed on first look: a sink taking thousands of mails a second (the
        # benchmarks) should not spend its time in the email parser nobody reads.
        message = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class MailboxHandler:
    """aiosmtpd handler: stores each accepted message and wakes waiters."""

    folder: Path | None
    received: list[ReceivedMail] = field(default_factory=list)
    # Recipients this sink answers with a given reply instead of accepting, e.g.
    # "550 5.1.1 no such user" (a bounce) or "451 4.2.0 try later" (a deferral).
    refusals: dict[str, str] = field(default_factory=dict)
    # Fault switches (chaos runs): a reply such as "451 4.3.0 try later" given to
    # every recipient, or at the end of every message's DATA instead of accepting
    # it; ``deferred`` counts the replies given.
    deferral: str | None = None
    data_deferral: str | None = None
    deferred: int = 0
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.deferral or self.refusals.get(address.lower())
        if self.deferral:
            self.deferred += 1
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_deferral:
            self.deferred += 1
            return self.data_deferral
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        now = datetime.now(UTC)
        path = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{now:%Y%m%dT%H%M%S%f}-{next(self._counter):06d}.eml"
            path = self.folder / name
            # Write then rename, so a reader never sees half a message.
            partial = path.with_suffix(".part")
            partial.write_bytes(content)
            partial.rename(path)
        async with self._arrived:
            self.received.append(
                ReceivedMail(
                    path=path,
                    mail_from=envelope.mail_from or "",
                    recipients=list(envelope.rcpt_tos),
                    content=content,
                    received_at=now,
                )
            )
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int, seconds: float = 30.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages have arrived."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), seconds
            )
            return list(self.received)


class MailSink:
    """The SMTP server itself, running on the current event loop."""

    def __init__(self, host: str, port: int, folder: Path | None) -> None:
        self.host = host
        self.port = port
        self.handler = MailboxHandler(folder)
        self._server: asyncio.Server | None = None
        # Open sessions, so refuse_connections() can drop the ones clients keep.
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> Any:
            session = SMTP(
                self.handler, hostname="aftercare-mail-sink", ident="Aftercare mail sink"
            )
            self._sessions.add(session)
            return session

        self._server = await loop.create_server(protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def refusing(self) -> bool:
        return self._server is None

    async def refuse_connections(self) -> None:
        """An outage (chaos runs): stop listening, so connecting is refused, and drop
        every open session, so a client's kept connection breaks too. The port stays
        ours to take back with :meth:`accept_connections`."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._sessions):
            transport = session.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        if server is not None:
            await server.wait_closed()

    async def accept_connections(self) -> None:
        """End an outage: listen again on the same port."""
        if self._server is None:
            await self.start()

    async def __aenter__(self) -> MailSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
