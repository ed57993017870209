"""STOP by SMS through the parts as ``aftercare run`` wires them: the journey worker
(``journey_worker``) texts the customer through the Twilio fake and, on the way,
notes the number in the phone index; the HTTP app (``engine.processes.http.http_app``,
keyed from the same service secret) then finds the customer from the number alone
when they text STOP. Real dev server, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.client import Client
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from engine.customers.consent import ConsentLedger
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.devstack.twilio_fake import (
    FakeMessage,
    TwilioFake,
    new_account_sid,
    serve_twilio_fake,
)
from engine.journeys.directory import JourneyDirectory
from engine.messaging.phone_index import PhoneIndex, phone_index_key
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.http_server import serve_http
from engine.platform.links.secret import load_or_create_secret
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import http_app
from engine.processes.worker import journey_worker
from tests.engine.customers.test_inbound_sms import inbound, new_number
from tests.support.marks import TEST_MARKS
from tests.support.net import free_port
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.orders import OrderEvent, Shipment
from workflows.vocabulary import EventType

AUTH_TOKEN = "worker-inbound-auth-token"
SHOP_NUMBER = "+15005550006"


async def test_a_text_sent_by_the_worker_lets_a_stop_reply_find_the_customer(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mail_sink: MailSink,
    database_url: str,
    tmp_path: Path,
) -> None:
    account = new_account_sid()
    number = new_number()
    customer_id = f"cus-stop-{uuid.uuid4().hex[:8]}"
    order = domain_order(customer_id=customer_id, phone=number)
    http_port = free_port()
    async with serve_twilio_fake("127.0.0.1", 0, account, AUTH_TOKEN) as twilio:
        # No secret_key: worker and HTTP app both take the one the state dir keeps,
        # as in the dev stack, and must derive the same index key from it.
        settings = Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"stop-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            smtp_port=mail_sink.port,
            twilio_account_sid=account,
            twilio_auth_token=SecretStr(AUTH_TOKEN),
            twilio_from_number=SHOP_NUMBER,
            twilio_api_base_url=twilio.base_url,
            http_port=http_port,
            public_base_url=f"http://127.0.0.1:{http_port}",
        )
        settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
        directory = JourneyDirectory(temporal_client, settings.task_queue)
        async with (
            journey_worker(temporal_client, settings) as worker,
            worker,
            http_app(settings) as app,
            serve_http(app, "127.0.0.1", http_port) as server,
            httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http,
        ):
            started = await directory.start(order)
            # Out for delivery prefers SMS: the worker texts the customer.
            await directory.record_event(
                order.order_id,
                OrderEvent(
                    event_id=f"evt-ofd-{uuid.uuid4().hex[:8]}",
                    type=EventType.OUT_FOR_DELIVERY,
                    occurred_at=datetime.now(UTC),
                    shipment=Shipment(carrier="DHL", tracking_number="JD0042"),
                ),
            )
            await eventually(lambda: texts_to(twilio, number), lambda texts: len(texts) == 1)

            engine = create_engine(database_url)
            try:
                sessions = create_session_factory(engine)
                # The worker noted the number (as a keyed hash) for this customer.
                index = PhoneIndex(sessions, phone_index_key(load_or_create_secret(settings)))
                assert await index.customers(number) == [customer_id]
                consent = ConsentLedger(sessions, TEST_MARKS)
                assert await consent.allows(customer_id, "sms", "marketing")

                # The customer replies STOP; Twilio posts it, signed, to the public URL.
                fields = inbound("STOP", number)
                signature = RequestValidator(AUTH_TOKEN).compute_signature(
                    f"{settings.public_base_url}/twilio/inbound", fields
                )
                response = await http.post(
                    "/twilio/inbound", data=fields, headers={"X-Twilio-Signature": signature}
                )
                assert response.status_code == 200, response.text

                # Found from the number alone: their SMS consent is refused.
                history = await consent.history(customer_id)
                assert [(e.channel, e.granted, e.source) for e in history] == [
                    ("sms", False, "sms_stop")
                ]
                assert not await consent.allows(customer_id, "sms", "marketing")
                assert await consent.allows(customer_id, "email", "marketing")
                assert await SuppressionList(sessions).is_suppressed("sms", number)
            finally:
                await engine.dispose()
            await temporal_client.get_workflow_handle(started.journey_id).cancel()


async def texts_to(twilio: TwilioFake, number: str) -> list[FakeMessage]:
    return [message for message in twilio.messages if message.to == number]
