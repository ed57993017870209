"""The send-path bench at a tiny scale, on both databases: every email reaches the
sink and every SMS the Twilio fake, each recorded once in the ledger. Counts only:
the rates are the bench's output, never a test's verdict."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from engine.devstack.mail_sink import MailSink
from engine.platform.database.connection import create_engine
from engine.platform.database.tables import Message, MessageStatus
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from tools.bench.send_path import send_path
from tools.bench.workloads import WARMUP_RUNS


async def test_send_path_delivers_every_email_and_sms_once(
    database_url: str, mail_sink: MailSink, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None, state_dir=tmp_path, smtp_port=mail_sink.port, database_url=database_url
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    before = len(mail_sink.handler.received)

    rates = await send_path(settings, mail_sink, sends=12, in_flight=4)

    assert (rates.emails.count, rates.sms.count) == (12, 12)
    assert rates.emails.concurrency_limit == rates.sms.concurrency_limit == 4
    assert rates.emails.seconds > 0
    assert rates.sms.seconds > 0
    assert len(mail_sink.handler.received) - before == 12 + WARMUP_RUNS
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Message.channel, Message.status, func.count()).group_by(
                    Message.channel, Message.status
                )
            )
            counts = {(channel, status): n for channel, status, n in rows}
    finally:
        await engine.dispose()
    sent = MessageStatus.SENT
    assert counts == {("email", sent): 12 + WARMUP_RUNS, ("sms", sent): 12 + WARMUP_RUNS}
