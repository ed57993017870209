"""``aftercare demo``: a handful of realistic orders pushed through the running service.

The first sample customer has the shop's app (a push device registered first), so
their shipping notice arrives by push: in ``make run`` the FCM fake keeps it under
``.aftercare/push/``; they also allowed notifications in their browser (a web push
subscription from the dev stack's fake push service), which keeps its copy under
``.aftercare/webpush/``. The others have no app, and their journeys go straight to the
next channel. The second prefers WhatsApp: outside a window they opened, their
delivery news goes as approved templates (Content SIDs) through the Twilio fake,
which keeps them under ``.aftercare/sms/`` beside the texts.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import typer
from aftercare.v1 import devices_pb2 as devices_pb
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import preferences_pb2 as preferences_pb

from clients import AftercareClient, AftercareError, JourneyExistsError
from engine.cli.connection import ApiKeyOption, api_client
from engine.cli.demo_engagement import engage
from engine.cli.samples import sample_order, sample_shipment
from engine.platform.settings import Settings

# The app install of the first sample customer, shaped like an FCM registration token.
APP_TOKEN = "demoAppInstall0001:APA91bH_aftercare_demo_android_0001"


async def _demo(settings: Settings, api_key: str | None, prefix: str) -> None:
    async with api_client(settings, api_key) as client:
        ids = [f"{prefix}-{n}" for n in range(1, 5)]
        app_user = sample_order(ids[0], 0).customer.id
        await client.register_device(app_user, APP_TOKEN, devices_pb.DEVICE_PLATFORM_ANDROID)
        typer.echo(f"{app_user}: app device registered (push first)")
        browser = await _browser_subscription(settings)
        if browser is not None:
            await client.register_device(
                app_user, platform=devices_pb.DEVICE_PLATFORM_WEB, web_push=browser
            )
            typer.echo(f"{app_user}: browser subscribed to web push")
        whatsapp_user = sample_order(ids[1], 1).customer.id
        await client.update_preferences(
            preferences_pb.UpdatePreferencesRequest(
                customer_id=whatsapp_user, preferred_channel=pb.CHANNEL_WHATSAPP, source="demo"
            )
        )
        typer.echo(f"{whatsapp_user}: prefers WhatsApp (templates outside their window)")
        for variant, order_id in enumerate(ids):
            try:
                started = await client.start_journey(sample_order(order_id, variant))
            except JourneyExistsError:
                typer.echo(f"{order_id}: already used, skipped")
                continue
            typer.echo(f"{order_id}: journey {started.journey_id} started")
        # Let the confirmations go out before the parcels ship, as in real life.
        await asyncio.sleep(1)
        events: list[tuple[str, pb.EventType.ValueType]] = [
            (ids[0], pb.EVENT_TYPE_SHIPPED),
            (ids[1], pb.EVENT_TYPE_SHIPPED),
            (ids[1], pb.EVENT_TYPE_OUT_FOR_DELIVERY),
            (ids[1], pb.EVENT_TYPE_DELIVERED),
            (ids[2], pb.EVENT_TYPE_CANCELLED),
        ]
        for order_id, event_type in events:
            event = pb.OrderEvent(event_id=f"{order_id}-{event_type}", type=event_type)
            if event_type == pb.EVENT_TYPE_SHIPPED:
                event.shipment.CopyFrom(sample_shipment(order_id))
            await client.record_event(order_id, event)
            name = pb.EventType.Name(event_type).removeprefix("EVENT_TYPE_").lower()
            typer.echo(f"{order_id}: {name} recorded")
        # Each event above is answered by one message, after the confirmation.
        expected = {order_id: 1 + sum(1 for o, _ in events if o == order_id) for order_id in ids}
        for order_id in ids:
            journey = await _settled(client, order_id, expected[order_id])
            stage = pb.JourneyStage.Name(journey.stage).removeprefix("JOURNEY_STAGE_").lower()
            typer.echo(f"{order_id}: stage {stage}, {len(journey.sent)} message(s) sent")
            for step in journey.scheduled[:4]:
                typer.echo(f"    then {step.step} at {step.due_local} ({step.timezone})")
        # Feedback, clicks on tracked links and repeat orders, for the report.
        await engage(client, settings, prefix)


async def _browser_subscription(settings: Settings) -> devices_pb.WebPushSubscription | None:
    """A subscription from the fake push service ``make run`` runs, made with the dev
    stack's VAPID key as a browser's PushManager.subscribe() would; None elsewhere."""
    # Dev-only, like the fake: not imported where the production image runs the CLI.
    from engine.devstack.dev_webpush import FAKE_STATE_FILE_NAME, VAPID_PUBLIC_KEY_FILE_NAME

    state = settings.state_dir / FAKE_STATE_FILE_NAME
    public_key = settings.state_dir / VAPID_PUBLIC_KEY_FILE_NAME
    if not state.is_file() or not public_key.is_file():
        return None
    port = json.loads(state.read_text(encoding="utf-8")).get("port")
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"http://127.0.0.1:{port}/subscriptions",
            json={"applicationServerKey": public_key.read_text(encoding="utf-8").strip()},
        )
    answer.raise_for_status()
    made = answer.json()
    return devices_pb.WebPushSubscription(
        endpoint=made["endpoint"], p256dh=made["keys"]["p256dh"], auth=made["keys"]["auth"]
    )


async def _settled(client: AftercareClient, order_id: str, messages: int) -> pb.Journey:
    """The journey once its messages are out (or after a few seconds, as it stands)."""
    for _ in range(50):
        journey = await client.get_journey(order_id)
        if len(journey.sent) >= messages:
            break
        await asyncio.sleep(0.2)
    return journey


def demo(
    prefix: str = typer.Option(
        "", help="Order id prefix; defaults to a new one per run so the demo can run again."
    ),
    api_key: ApiKeyOption = None,
) -> None:
    settings = Settings()
    chosen = prefix or f"DEMO{int(time.time())}"
    try:
        asyncio.run(_demo(settings, api_key, chosen))
    except AftercareError as err:
        typer.echo(f"{err.code.name}: {err.message}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(
        f"\nEmails: {settings.mail_dir.resolve()}\n"
        f"Push (FCM fake in make run): {(settings.state_dir / 'push').resolve()}\n"
        f"Web push (fake push service): {(settings.state_dir / 'webpush').resolve()}\n"
        f"Journeys: http://127.0.0.1:{settings.temporal_ui_port}/namespaces/"
        f"{settings.temporal_namespace}/workflows"
    )
