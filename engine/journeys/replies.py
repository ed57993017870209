"""Turning domain objects into API messages."""

from __future__ import annotations

from datetime import datetime

from aftercare.v1 import journey_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.client import WorkflowExecutionStatus

from engine.journeys.directory import JourneySummary, JourneyView
from engine.journeys.parsing import EVENT_TYPES, STAGES
from workflows.vocabulary import Channel, EventType, Stage

_EVENT_NUMBERS: dict[EventType, pb.EventType.ValueType] = {
    event: pb.EventType.ValueType(number) for number, event in EVENT_TYPES.items()
}
_STAGE_NUMBERS: dict[Stage, pb.JourneyStage.ValueType] = {
    stage: pb.JourneyStage.ValueType(number) for number, stage in STAGES.items()
}
_CHANNEL_NUMBERS = {
    Channel.EMAIL: pb.CHANNEL_EMAIL,
    Channel.SMS: pb.CHANNEL_SMS,
    Channel.WHATSAPP: pb.CHANNEL_WHATSAPP,
    Channel.PUSH: pb.CHANNEL_PUSH,
}
_STATUS_NUMBERS = {
    WorkflowExecutionStatus.RUNNING: pb.JOURNEY_STATUS_RUNNING,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: pb.JOURNEY_STATUS_RUNNING,
    WorkflowExecutionStatus.COMPLETED: pb.JOURNEY_STATUS_COMPLETED,
    WorkflowExecutionStatus.CANCELED: pb.JOURNEY_STATUS_CANCELLED,
    WorkflowExecutionStatus.FAILED: pb.JOURNEY_STATUS_FAILED,
    WorkflowExecutionStatus.TERMINATED: pb.JOURNEY_STATUS_TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: pb.JOURNEY_STATUS_TIMED_OUT,
}


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def journey(view: JourneyView) -> pb.Journey:
    state = view.state
    message = pb.Journey(
        journey_id=state.journey_id,
        order_id=state.order_id,
        customer_id=state.customer_id,
        stage=_STAGE_NUMBERS.get(state.stage, pb.JOURNEY_STAGE_UNSPECIFIED),
        status=_STATUS_NUMBERS.get(view.status, pb.JOURNEY_STATUS_UNSPECIFIED),
        waiting_for=[_EVENT_NUMBERS[event] for event in state.waiting_for],
        next_step=state.next_step,
        plan=pb.PlanRef(id=state.plan_id, version=state.plan_version, content_hash=state.plan_hash),
        paused=state.paused,
    )
    for step in state.scheduled:
        message.scheduled.append(
            pb.ScheduledStep(
                step=step.step,
                template=step.template,
                category=step.category,
                channels=[_CHANNEL_NUMBERS[channel] for channel in step.channels],
                due_at=timestamp(step.due_at),
                due_local=step.due_local,
                timezone=state.timezone,
                held=step.held,
            )
        )
    for sent in state.sent:
        message.sent.append(
            pb.SentMessage(
                step=sent.step,
                channel=_CHANNEL_NUMBERS[sent.channel] if sent.channel else pb.CHANNEL_UNSPECIFIED,
                template=sent.template,
                sent_at=timestamp(sent.sent_at),
                message_id=sent.message_id,
                status=sent.status,
                detail=sent.detail,
            )
        )
    for entry in state.timeline:
        message.timeline.append(
            pb.TimelineEntry(at=timestamp(entry.at), kind=entry.kind, detail=entry.detail)
        )
    return message


def summary(item: JourneySummary) -> pb.JourneySummary:
    message = pb.JourneySummary(
        journey_id=item.journey_id,
        order_id=item.order_id,
        customer_id=item.customer_id,
        stage=_STAGE_NUMBERS.get(item.stage, pb.JOURNEY_STAGE_UNSPECIFIED)
        if item.stage
        else pb.JOURNEY_STAGE_UNSPECIFIED,
        status=_STATUS_NUMBERS.get(item.status, pb.JOURNEY_STATUS_UNSPECIFIED),
        started_at=timestamp(item.started_at),
    )
    if item.closed_at:
        message.closed_at.CopyFrom(timestamp(item.closed_at))
    return message
