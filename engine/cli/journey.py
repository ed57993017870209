"""``aftercare journey ...``: start, event, show, cancel and list journeys through the API."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer
from aftercare.v1 import journey_pb2 as pb
from google.protobuf import json_format

from engine.cli.connection import ApiKeyOption, call_api
from engine.cli.samples import sample_order, sample_shipment

journey_app = typer.Typer(help="Work with journeys through the gRPC API.", no_args_is_help=True)


EVENT_NAMES = {
    name.removeprefix("EVENT_TYPE_").lower(): number
    for name, number in pb.EventType.items()
    if number != pb.EVENT_TYPE_UNSPECIFIED
}
STAGE_NAMES = {
    name.removeprefix("JOURNEY_STAGE_").lower(): number
    for name, number in pb.JourneyStage.items()
    if number != pb.JOURNEY_STAGE_UNSPECIFIED
}


def _print(message: object) -> None:
    typer.echo(
        json_format.MessageToJson(message, indent=2, preserving_proto_field_name=True)  # type: ignore[arg-type]
    )


@journey_app.command("start")
def start(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Order as JSON (aftercare.v1.Order).")
    ] = None,
    sample: Annotated[
        str | None, typer.Option(help="Start a built-in sample order with this order id.")
    ] = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Start the journey of an order."""
    if (file is None) == (sample is None):
        raise typer.BadParameter("give exactly one of --file or --sample")
    order = json_format.Parse(file.read_text(), pb.Order()) if file else sample_order(sample or "")
    _print(call_api(lambda client: client.start_journey(order), api_key))


@journey_app.command("event")
def event(
    order_id: str,
    event_type: Annotated[str, typer.Argument(help=", ".join(EVENT_NAMES))],
    event_id: Annotated[str | None, typer.Option("--id", help="Defaults to a new UUID.")] = None,
    carrier: str = "",
    tracking_number: str = "",
    tracking_url: str = "",
    score: Annotated[int | None, typer.Option(help="Feedback score 0-10.")] = None,
    comment: str = "",
    api_key: ApiKeyOption = None,
) -> None:
    """Record an order event (shipped, delivered, cancelled, ...)."""
    if event_type not in EVENT_NAMES:
        raise typer.BadParameter(f"unknown event type; one of {', '.join(EVENT_NAMES)}")
    message = pb.OrderEvent(event_id=event_id or str(uuid.uuid4()), type=EVENT_NAMES[event_type])
    if carrier or tracking_number or tracking_url:
        message.shipment.CopyFrom(
            pb.Shipment(carrier=carrier, tracking_number=tracking_number, tracking_url=tracking_url)
        )
    elif event_type == "shipped":
        message.shipment.CopyFrom(sample_shipment(order_id))
    if score is not None:
        message.feedback.CopyFrom(pb.Feedback(score=score, comment=comment))
    _print(call_api(lambda client: client.record_event(order_id, message), api_key))


@journey_app.command("show")
def show(order_id: str, api_key: ApiKeyOption = None) -> None:
    """Show a journey's live state: stage, messages sent, what it waits for."""
    _print(call_api(lambda client: client.get_journey(order_id), api_key))


@journey_app.command("cancel")
def cancel(order_id: str, reason: str = "", api_key: ApiKeyOption = None) -> None:
    """Stop a journey: nothing more is sent."""
    _print(call_api(lambda client: client.cancel_journey(order_id, reason), api_key))


@journey_app.command("list")
def list_journeys(
    customer: Annotated[str, typer.Option(help="Internal customer id.")] = "",
    stage: Annotated[str, typer.Option(help=", ".join(STAGE_NAMES))] = "",
    limit: int = 100,
    api_key: ApiKeyOption = None,
) -> None:
    """List journeys by customer and/or stage (Temporal visibility)."""
    if stage and stage not in STAGE_NAMES:
        raise typer.BadParameter(f"unknown stage; one of {', '.join(STAGE_NAMES)}")
    stage_number = STAGE_NAMES.get(stage, pb.JOURNEY_STAGE_UNSPECIFIED)
    _print(
        call_api(
            lambda client: client.list_journeys(
                customer_id=customer, stage=stage_number, page_size=limit
            ),
            api_key,
        )
    )
