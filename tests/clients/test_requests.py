"""Every public method of AftercareClient sends the request it documents to the right
RPC, once, and returns the server's reply (GetJourney: the journey inside it)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aftercare.v1 import devices_pb2 as devices
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import operations_pb2 as ops
from aftercare.v1 import preferences_pb2 as prefs
from aftercare.v1 import reports_pb2 as reports
from aftercare.v1 import subscriptions_pb2 as subscriptions
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from clients import AftercareClient
from tests.support.api_methods import api_methods
from tests.support.fake_api import ALL_METHODS, FakeServer


def timestamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


ORDER = pb.Order(
    order_id="A-1001",
    customer=pb.Customer(
        id="cus_42",
        name="Jane Doe",
        email="jane@example.test",
        phone="+4915112345678",
        locale="de",
        timezone="Europe/Berlin",
        previous_orders=2,
    ),
    items=[
        pb.LineItem(
            sku="COF-1",
            name="Beans",
            category="coffee",
            quantity=2,
            unit_price_minor=1450,
            consumption_days=14,
        )
    ],
    currency="EUR",
    subtotal_minor=2900,
    shipping_minor=495,
    tax_minor=463,
    total_minor=3395,
    shipping_address=pb.Address(
        name="Jane Doe", line1="Kastanienallee 12", city="Berlin", postal_code="10435"
    ),
    placed_at=timestamp(1_750_000_000),
)
SHIPPED = pb.OrderEvent(
    event_id="evt-1",
    type=pb.EVENT_TYPE_SHIPPED,
    occurred_at=timestamp(1_750_100_000),
    shipment=pb.Shipment(carrier="DHL", tracking_number="JD01", tracking_url="https://t.example"),
)
RETURNED = pb.OrderEvent(event_id="evt-2", type=pb.EVENT_TYPE_RETURNED, skus=["COF-1"])
JOURNEY = pb.Journey(
    journey_id="order-A-1001",
    order_id="A-1001",
    customer_id="cus_42",
    stage=pb.JOURNEY_STAGE_SHIPPED,
    status=pb.JOURNEY_STATUS_RUNNING,
    sent=[pb.SentMessage(step="order_confirmation", channel=pb.CHANNEL_EMAIL, status="sent")],
    waiting_for=[pb.EVENT_TYPE_DELIVERED],
    next_step="shipping_delay",
    plan=pb.PlanRef(id="default", version=1, content_hash="ab" * 32),
)
PREFERENCES = prefs.Preferences(
    customer_id="cus_42",
    consents=[
        prefs.Consent(
            channel=pb.CHANNEL_SMS,
            category=prefs.MESSAGE_CATEGORY_MARKETING,
            granted=False,
            source="api",
        )
    ],
    locale="de",
    timezone="Europe/Berlin",
    quiet_hours=prefs.QuietHours(start="22:00", end="07:00"),
    preferred_channel=pb.CHANNEL_SMS,
)
UPDATE = prefs.UpdatePreferencesRequest(
    customer_id="cus_42",
    consents=[prefs.ConsentChange(category=prefs.MESSAGE_CATEGORY_MARKETING, granted=False)],
    timezone="Europe/Paris",
    update_mask=field_mask_pb2.FieldMask(paths=["consents", "timezone"]),
    source="crm",
)


PAUSE = ops.Pause(
    pause_id="pause-0123456789abcdef",
    scope=ops.PauseScope(kind=ops.PAUSE_SCOPE_KIND_STEP, value="cross_sell"),
    reason="wrong price",
    created_at=timestamp(1_750_400_000),
    created_by="0123456789abcdef",
)
BULK_FILTER = ops.JourneyFilter(
    plan="default",
    stage=pb.JOURNEY_STAGE_DELIVERED,
    customer_id="cus_42",
    started_after=timestamp(1_750_000_000),
    started_before=timestamp(1_750_500_000),
    paused=False,
)
BULK = ops.BulkOperation(
    job_id="aftercare-cancel-0123456789abcdef",
    action=ops.BULK_ACTION_CANCEL,
    state=ops.BULK_OPERATION_STATE_RUNNING,
    total=40,
    completed=12,
    failed=1,
    started_at=timestamp(1_750_400_100),
    reason="recall",
    query="WorkflowType = 'OrderJourney'",
)


def same(reply: Message) -> Message:
    return reply


def journey_of(reply: Message) -> Message:
    assert isinstance(reply, pb.GetJourneyResponse)
    return reply.journey


def pause_of(reply: Message) -> Message:
    assert isinstance(reply, ops.PauseSendingResponse)
    return reply.pause


def operation_of(reply: Message) -> Message:
    assert isinstance(reply, ops.GetBulkOperationResponse)
    return reply.operation


DEVICE = devices.Device(device_id="ab" * 32, platform=devices.DEVICE_PLATFORM_IOS)
WEB_PUSH = devices.WebPushSubscription(
    endpoint="https://push.example/send/abc", p256dh="BPk-example-key", auth="c2VjcmV0"
)
SUBSCRIPTION = subscriptions.Subscription(
    subscription_id="sub_0123456789abcdef01234567",
    url="https://crm.example.test/hooks",
    event_types=["detractor"],
    include_personal_data=True,
)


@dataclass(frozen=True)
class Case:
    name: str
    invoke: Callable[[AftercareClient], Awaitable[Message]]
    rpc: str
    request: Message
    reply: Message
    # What the method returns, from the reply.
    returned: Callable[[Message], Message] = same

    def __str__(self) -> str:
        return self.name


CASES = [
    Case(
        "start_journey",
        lambda c: c.start_journey(ORDER),
        "StartJourney",
        pb.StartJourneyRequest(order=ORDER),
        pb.StartJourneyResponse(journey_id="order-A-1001", created=True),
    ),
    Case(
        "record_event",
        lambda c: c.record_event("A-1001", SHIPPED),
        "RecordEvent",
        pb.RecordEventRequest(order_id="A-1001", event=SHIPPED),
        pb.RecordEventResponse(journey_id="order-A-1001"),
    ),
    Case(
        "record_event with skus",
        lambda c: c.record_event("A-1001", RETURNED),
        "RecordEvent",
        pb.RecordEventRequest(order_id="A-1001", event=RETURNED),
        pb.RecordEventResponse(journey_id="order-A-1001"),
    ),
    Case(
        "record_event_with_order",
        lambda c: c.record_event_with_order("A-1001", SHIPPED, ORDER),
        "RecordEvent",
        pb.RecordEventRequest(order_id="A-1001", event=SHIPPED, order=ORDER),
        pb.RecordEventResponse(journey_id="order-A-1001"),
    ),
    Case(
        "get_journey",
        lambda c: c.get_journey("A-1001"),
        "GetJourney",
        pb.GetJourneyRequest(order_id="A-1001"),
        pb.GetJourneyResponse(journey=JOURNEY),
        returned=journey_of,
    ),
    Case(
        "cancel_journey",
        lambda c: c.cancel_journey("A-1001", "customer asked"),
        "CancelJourney",
        pb.CancelJourneyRequest(order_id="A-1001", reason="customer asked"),
        pb.CancelJourneyResponse(journey_id="order-A-1001"),
    ),
    Case(
        "cancel_journey without a reason",
        lambda c: c.cancel_journey("A-1001"),
        "CancelJourney",
        pb.CancelJourneyRequest(order_id="A-1001", reason=""),
        pb.CancelJourneyResponse(journey_id="order-A-1001"),
    ),
    Case(
        "list_journeys",
        lambda c: c.list_journeys(
            customer_id="cus_42",
            stage=pb.JOURNEY_STAGE_DELIVERED,
            page_size=25,
            page_token=b"\x01page-2",
        ),
        "ListJourneys",
        pb.ListJourneysRequest(
            customer_id="cus_42",
            stage=pb.JOURNEY_STAGE_DELIVERED,
            page_size=25,
            page_token=b"\x01page-2",
        ),
        pb.ListJourneysResponse(
            journeys=[
                pb.JourneySummary(
                    journey_id="order-A-1001",
                    order_id="A-1001",
                    customer_id="cus_42",
                    stage=pb.JOURNEY_STAGE_DELIVERED,
                    status=pb.JOURNEY_STATUS_RUNNING,
                    started_at=timestamp(1_750_000_000),
                )
            ],
            next_page_token=b"\x02page-3",
        ),
    ),
    Case(
        "list_journeys with the defaults",
        lambda c: c.list_journeys(),
        "ListJourneys",
        pb.ListJourneysRequest(),
        pb.ListJourneysResponse(),
    ),
    Case(
        "get_preferences",
        lambda c: c.get_preferences("cus_42"),
        "GetPreferences",
        prefs.GetPreferencesRequest(customer_id="cus_42", include_history=False),
        prefs.GetPreferencesResponse(preferences=PREFERENCES),
    ),
    Case(
        "get_preferences with history",
        lambda c: c.get_preferences("cus_42", include_history=True),
        "GetPreferences",
        prefs.GetPreferencesRequest(customer_id="cus_42", include_history=True),
        prefs.GetPreferencesResponse(
            preferences=PREFERENCES,
            history=[
                prefs.ConsentRecord(
                    channel=pb.CHANNEL_SMS,
                    category=prefs.MESSAGE_CATEGORY_MARKETING,
                    granted=False,
                    source="api",
                    recorded_at=timestamp(1_750_200_000),
                )
            ],
        ),
    ),
    Case(
        "update_preferences",
        lambda c: c.update_preferences(UPDATE),
        "UpdatePreferences",
        UPDATE,
        prefs.UpdatePreferencesResponse(preferences=PREFERENCES, journeys_notified=3),
    ),
    Case(
        "unsubscribe",
        lambda c: c.unsubscribe(
            "cus_42",
            category=prefs.MESSAGE_CATEGORY_FEEDBACK,
            channel=pb.CHANNEL_WHATSAPP,
            source="support_desk",
        ),
        "Unsubscribe",
        prefs.UnsubscribeRequest(
            customer_id="cus_42",
            category=prefs.MESSAGE_CATEGORY_FEEDBACK,
            channel=pb.CHANNEL_WHATSAPP,
            source="support_desk",
        ),
        prefs.UnsubscribeResponse(preferences=PREFERENCES, journeys_notified=1),
    ),
    Case(
        "unsubscribe from everything",
        lambda c: c.unsubscribe("cus_42"),
        "Unsubscribe",
        # Unspecified category and channel: every category that needs consent, everywhere.
        prefs.UnsubscribeRequest(
            customer_id="cus_42",
            category=prefs.MESSAGE_CATEGORY_UNSPECIFIED,
            channel=pb.CHANNEL_UNSPECIFIED,
            source="",
        ),
        prefs.UnsubscribeResponse(preferences=PREFERENCES, journeys_notified=2),
    ),
    Case(
        "erase_customer",
        lambda c: c.erase_customer("cus_42"),
        "EraseCustomer",
        prefs.EraseCustomerRequest(customer_id="cus_42"),
        prefs.EraseCustomerResponse(
            journeys_cancelled=2,
            preference_rows_deleted=1,
            consent_rows_deleted=4,
            ledger_rows_anonymised=7,
            data_key_destroyed=True,
            erased_at=timestamp(1_750_300_000),
        ),
    ),
    Case(
        "pause_sending",
        lambda c: c.pause_sending(
            ops.PAUSE_SCOPE_KIND_STEP,
            "cross_sell",
            reason="wrong price",
            include_transactional=True,
        ),
        "PauseSending",
        ops.PauseSendingRequest(
            scope=ops.PauseScope(kind=ops.PAUSE_SCOPE_KIND_STEP, value="cross_sell"),
            include_transactional=True,
            reason="wrong price",
        ),
        ops.PauseSendingResponse(pause=PAUSE),
        returned=pause_of,
    ),
    Case(
        "resume_sending",
        lambda c: c.resume_sending("pause-0123456789abcdef"),
        "ResumeSending",
        ops.ResumeSendingRequest(pause_id="pause-0123456789abcdef"),
        ops.ResumeSendingResponse(pause=PAUSE, job_id="aftercare-sending_resumed-0123"),
    ),
    Case(
        "list_pauses",
        lambda c: c.list_pauses(),
        "ListPauses",
        ops.ListPausesRequest(),
        ops.ListPausesResponse(pauses=[PAUSE]),
    ),
    Case(
        "count_journeys",
        lambda c: c.count_journeys(BULK_FILTER),
        "CountJourneys",
        ops.CountJourneysRequest(filter=BULK_FILTER),
        ops.CountJourneysResponse(count=40, query="WorkflowType = 'OrderJourney'"),
    ),
    Case(
        "count_journeys of every journey",
        lambda c: c.count_journeys(),
        "CountJourneys",
        ops.CountJourneysRequest(),
        ops.CountJourneysResponse(count=1000),
    ),
    Case(
        "start_bulk_operation",
        lambda c: c.start_bulk_operation(
            ops.BULK_ACTION_CANCEL, BULK_FILTER, reason="recall", max_operations_per_second=20
        ),
        "StartBulkOperation",
        ops.StartBulkOperationRequest(
            filter=BULK_FILTER,
            action=ops.BULK_ACTION_CANCEL,
            reason="recall",
            max_operations_per_second=20,
        ),
        ops.StartBulkOperationResponse(count=40, job_id=BULK.job_id, query=BULK.query),
    ),
    Case(
        "start_bulk_operation as a dry run",
        lambda c: c.start_bulk_operation(ops.BULK_ACTION_PAUSE, BULK_FILTER, dry_run=True),
        "StartBulkOperation",
        ops.StartBulkOperationRequest(
            filter=BULK_FILTER, action=ops.BULK_ACTION_PAUSE, dry_run=True
        ),
        ops.StartBulkOperationResponse(count=40, query=BULK.query),
    ),
    Case(
        "get_bulk_operation",
        lambda c: c.get_bulk_operation(BULK.job_id),
        "GetBulkOperation",
        ops.GetBulkOperationRequest(job_id=BULK.job_id),
        ops.GetBulkOperationResponse(operation=BULK),
        returned=operation_of,
    ),
    Case(
        "register_device",
        lambda c: c.register_device("cus_42", "fcm-token-1", devices.DEVICE_PLATFORM_IOS),
        "RegisterDevice",
        devices.RegisterDeviceRequest(
            customer_id="cus_42", token="fcm-token-1", platform=devices.DEVICE_PLATFORM_IOS
        ),
        devices.RegisterDeviceResponse(device=DEVICE, created=True),
    ),
    Case(
        "register_device (web push)",
        lambda c: c.register_device("cus_42", web_push=WEB_PUSH),
        "RegisterDevice",
        devices.RegisterDeviceRequest(customer_id="cus_42", web_push=WEB_PUSH),
        devices.RegisterDeviceResponse(device=DEVICE, created=True),
    ),
    Case(
        "remove_device",
        lambda c: c.remove_device("cus_42", device_id=DEVICE.device_id),
        "RemoveDevice",
        devices.RemoveDeviceRequest(customer_id="cus_42", device_id=DEVICE.device_id),
        devices.RemoveDeviceResponse(),
    ),
    Case(
        "list_devices",
        lambda c: c.list_devices("cus_42"),
        "ListDevices",
        devices.ListDevicesRequest(customer_id="cus_42"),
        devices.ListDevicesResponse(devices=[DEVICE]),
    ),
    Case(
        "get_plan_report",
        lambda c: c.get_plan_report("default"),
        "GetPlanReport",
        reports.GetPlanReportRequest(plan="default"),
        reports.GetPlanReportResponse(plan="default", alpha=0.05),
    ),
    Case(
        "stop_experiment",
        lambda c: c.stop_experiment("review-subject", "short"),
        "StopExperiment",
        reports.StopExperimentRequest(experiment="review-subject", winner="short"),
        reports.StopExperimentResponse(
            experiment="review-subject", winner="short", decided_by="key-1"
        ),
    ),
    Case(
        "create_subscription",
        lambda c: c.create_subscription(
            "https://crm.example.test/hooks", ["detractor"], include_personal_data=True
        ),
        "CreateSubscription",
        subscriptions.CreateSubscriptionRequest(
            url="https://crm.example.test/hooks",
            event_types=["detractor"],
            include_personal_data=True,
        ),
        subscriptions.CreateSubscriptionResponse(
            subscription=SUBSCRIPTION, secret="whsec_c2VjcmV0LWtleS1vZi10aGUtdGVzdA=="
        ),
    ),
    Case(
        "list_subscriptions",
        lambda c: c.list_subscriptions(),
        "ListSubscriptions",
        subscriptions.ListSubscriptionsRequest(),
        subscriptions.ListSubscriptionsResponse(subscriptions=[SUBSCRIPTION]),
    ),
    Case(
        "remove_subscription",
        lambda c: c.remove_subscription(SUBSCRIPTION.subscription_id),
        "RemoveSubscription",
        subscriptions.RemoveSubscriptionRequest(subscription_id=SUBSCRIPTION.subscription_id),
        subscriptions.RemoveSubscriptionResponse(),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_each_method_sends_its_request_and_returns_the_reply(
    case: Case, fake: FakeServer, client: AftercareClient
) -> None:
    fake.api.replies[case.rpc] = case.reply

    returned = await case.invoke(client)

    assert [call.method for call in fake.api.calls] == [case.rpc]
    received = fake.api.calls[0].request
    assert type(received) is type(case.request)
    assert received == case.request
    assert returned == case.returned(case.reply)
    assert type(returned) is type(case.returned(case.reply))


async def test_record_event_sends_no_order_and_the_other_variant_does(
    fake: FakeServer, client: AftercareClient
) -> None:
    await client.record_event("A-1001", SHIPPED)
    await client.record_event_with_order("A-1001", SHIPPED, ORDER)
    without, with_order = (call.request for call in fake.api.calls)
    assert isinstance(without, pb.RecordEventRequest)
    assert isinstance(with_order, pb.RecordEventRequest)
    assert not without.HasField("order")
    assert with_order.HasField("order")
    assert with_order.order.order_id == "A-1001"


async def test_an_empty_reply_comes_back_as_the_empty_message(
    fake: FakeServer, client: AftercareClient
) -> None:
    # The fake answers the default message when no reply was chosen.
    journey = await client.get_journey("A-404")
    assert journey == pb.Journey()
    assert journey.stage == pb.JOURNEY_STAGE_UNSPECIFIED


def test_the_cases_cover_every_public_method_and_every_rpc() -> None:
    public = {
        name
        for name, member in inspect.getmembers(AftercareClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    # close() is covered by the channel tests.
    assert {case.name.split(" ")[0] for case in CASES} == public - {"close"}
    rpcs = {method.name for method in api_methods()}
    assert {case.rpc for case in CASES} == rpcs
    assert set(ALL_METHODS) == rpcs
