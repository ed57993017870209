"""One call of each public method of AftercareClient, for the tests that must hold on
every method (errors, deadlines, closing): its name, the RPC it makes, how to make it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aftercare.v1 import devices_pb2 as devices
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import operations_pb2 as ops
from aftercare.v1 import preferences_pb2 as prefs

from clients import AftercareClient


@dataclass(frozen=True)
class MethodCall:
    name: str
    rpc: str
    invoke: Callable[[AftercareClient], Awaitable[object]]

    def __str__(self) -> str:
        return self.name


ORDER = pb.Order(order_id="A-1001")
EVENT = pb.OrderEvent(event_id="e1", type=pb.EVENT_TYPE_SHIPPED)

JOURNEY_CALLS = (
    MethodCall("start_journey", "StartJourney", lambda c: c.start_journey(ORDER)),
    MethodCall("record_event", "RecordEvent", lambda c: c.record_event("A-1001", EVENT)),
    MethodCall(
        "record_event_with_order",
        "RecordEvent",
        lambda c: c.record_event_with_order("A-1001", EVENT, ORDER),
    ),
    MethodCall("get_journey", "GetJourney", lambda c: c.get_journey("A-1001")),
    MethodCall("cancel_journey", "CancelJourney", lambda c: c.cancel_journey("A-1001")),
    MethodCall("list_journeys", "ListJourneys", lambda c: c.list_journeys(customer_id="cus_42")),
)
PREFERENCES_CALLS = (
    MethodCall("get_preferences", "GetPreferences", lambda c: c.get_preferences("cus_42")),
    MethodCall(
        "update_preferences",
        "UpdatePreferences",
        lambda c: c.update_preferences(
            prefs.UpdatePreferencesRequest(customer_id="cus_42", locale="de")
        ),
    ),
    MethodCall("unsubscribe", "Unsubscribe", lambda c: c.unsubscribe("cus_42")),
    MethodCall("erase_customer", "EraseCustomer", lambda c: c.erase_customer("cus_42")),
)
OPERATIONS_CALLS = (
    MethodCall(
        "pause_sending",
        "PauseSending",
        lambda c: c.pause_sending(ops.PAUSE_SCOPE_KIND_STEP, "cross_sell", reason="bad price"),
    ),
    MethodCall("resume_sending", "ResumeSending", lambda c: c.resume_sending("pause-1")),
    MethodCall("list_pauses", "ListPauses", lambda c: c.list_pauses()),
    MethodCall("count_journeys", "CountJourneys", lambda c: c.count_journeys()),
    MethodCall(
        "start_bulk_operation",
        "StartBulkOperation",
        lambda c: c.start_bulk_operation(
            ops.BULK_ACTION_CANCEL, ops.JourneyFilter(plan="default"), dry_run=True
        ),
    ),
    MethodCall("get_bulk_operation", "GetBulkOperation", lambda c: c.get_bulk_operation("job-1")),
)
DEVICES_CALLS = (
    MethodCall(
        "register_device",
        "RegisterDevice",
        lambda c: c.register_device("cus_42", "token-1", devices.DEVICE_PLATFORM_ANDROID),
    ),
    MethodCall("remove_device", "RemoveDevice", lambda c: c.remove_device("cus_42", token="t")),
    MethodCall("list_devices", "ListDevices", lambda c: c.list_devices("cus_42")),
)
REPORTS_CALLS = (
    MethodCall("get_plan_report", "GetPlanReport", lambda c: c.get_plan_report("default")),
    MethodCall(
        "stop_experiment",
        "StopExperiment",
        lambda c: c.stop_experiment("review-subject", "short"),
    ),
)
SUBSCRIPTIONS_CALLS = (
    MethodCall(
        "create_subscription",
        "CreateSubscription",
        lambda c: c.create_subscription("https://crm.example.test/hooks", ["message.sent"]),
    ),
    MethodCall("list_subscriptions", "ListSubscriptions", lambda c: c.list_subscriptions()),
    MethodCall(
        "remove_subscription", "RemoveSubscription", lambda c: c.remove_subscription("sub_1")
    ),
)
EVERY_CALL = (
    JOURNEY_CALLS
    + PREFERENCES_CALLS
    + OPERATIONS_CALLS
    + DEVICES_CALLS
    + REPORTS_CALLS
    + SUBSCRIPTIONS_CALLS
)
