"""The fault switches chaos runs pull: the mail sink's outage and 4xx answers, and the
Twilio fake's outages, each against a real client."""

from __future__ import annotations

import socket
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest

from engine.devstack.mail_sink import MailSink
from engine.devstack.twilio_fake import build_twilio_fake, new_account_sid, serve_twilio_fake


def email(number: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "care@shop.example"
    message["To"] = "maya@example.com"
    message["Subject"] = f"message {number}"
    message["Message-ID"] = f"<{number}@shop.example>"
    message.set_content("hello")
    return message


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_an_outage_refuses_connections_and_drops_open_sessions() -> None:
    async with MailSink("127.0.0.1", 0, None) as sink:
        kept = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=5)
        await kept.connect()
        await kept.send_message(email(1))

        await sink.refuse_connections()

        assert sink.refusing
        assert refused(sink.port)
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await kept.send_message(email(2))  # the kept session is gone too

        await sink.accept_connections()

        assert not refused(sink.port)
        await aiosmtplib.send(email(3), hostname="127.0.0.1", port=sink.port, timeout=5)
        subjects = [str(mail.message["Subject"]) for mail in sink.handler.received]
        assert subjects == ["message 1", "message 3"]


async def test_deferrals_answer_4xx_at_rcpt_or_after_data_and_keep_nothing() -> None:
    async with MailSink("127.0.0.1", 0, None) as sink:
        sink.handler.deferral = "451 4.3.0 try again later"
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as at_rcpt:
            await aiosmtplib.send(email(1), hostname="127.0.0.1", port=sink.port, timeout=5)
        assert [r.code for r in at_rcpt.value.recipients] == [451]

        sink.handler.deferral = None
        sink.handler.data_deferral = "452 4.3.1 insufficient storage"
        with pytest.raises(aiosmtplib.SMTPDataError) as after_data:
            await aiosmtplib.send(email(2), hostname="127.0.0.1", port=sink.port, timeout=5)
        assert after_data.value.code == 452

        assert sink.handler.received == []
        assert sink.handler.deferred == 2
        sink.handler.data_deferral = None
        await aiosmtplib.send(email(3), hostname="127.0.0.1", port=sink.port, timeout=5)
        assert len(sink.handler.received) == 1


async def test_a_twilio_outage_answers_every_request_until_recovered() -> None:
    sid, token = new_account_sid(), "chaos-token"
    async with serve_twilio_fake("127.0.0.1", 0, sid, token) as fake:
        url = f"{fake.base_url}/2010-04-01/Accounts/{sid}/Messages.json"
        form = {"To": "+46701234567", "From": "+15005550006", "Body": "Your order shipped"}
        async with httpx.AsyncClient(auth=(sid, token)) as http:
            fake.fail_all(429, retry_after=3)
            answers = [await http.post(url, data=form) for _ in range(3)]
            assert [a.status_code for a in answers] == [429, 429, 429]
            assert {a.headers["Retry-After"] for a in answers} == {"3"}
            # Twilio's error shape, as the SDK parses it.
            assert answers[0].json()["status"] == 429
            assert answers[0].json()["code"] == 20429

            fake.fail_all(500)
            assert (await http.post(url, data=form)).status_code == 500

            fake.recover()
            assert fake.failing is None
            accepted = await http.post(url, data=form)
        assert accepted.status_code == 201
        assert [m.sid for m in fake.messages] == [accepted.json()["sid"]]


async def test_a_queued_failure_goes_before_the_outage_answer() -> None:
    sid, token = new_account_sid(), "chaos-token"
    async with serve_twilio_fake("127.0.0.1", 0, sid, token) as fake:
        url = f"{fake.base_url}/2010-04-01/Accounts/{sid}/Messages.json"
        form = {"To": "+46701234567", "From": "+15005550006", "Body": "hi"}
        fake.fail_all(500)
        fake.fail_next(503)
        async with httpx.AsyncClient(auth=(sid, token)) as http:
            statuses = [(await http.post(url, data=form)).status_code for _ in range(2)]
        assert statuses == [503, 500]
        assert fake.messages == []


@pytest.mark.parametrize("status", [200, 302, 600])
def test_an_outage_answer_must_be_an_http_error(status: int) -> None:
    fake = build_twilio_fake(new_account_sid(), "token")
    with pytest.raises(ValueError, match="HTTP error status"):
        fake.fail_all(status)
    assert fake.failing is None
