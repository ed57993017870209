"""Pauses and bulk operations as OperationsService messages."""

from __future__ import annotations

from aftercare.v1 import operations_pb2 as pb

from engine.journeys.operations.bulk import BulkAction, BulkProgress, BulkState
from engine.journeys.operations.parsing import BULK_ACTIONS, SCOPE_KINDS
from engine.journeys.replies import timestamp
from engine.messaging.pauses import Pause

_SCOPE_NUMBERS = {kind: pb.PauseScopeKind.ValueType(number) for number, kind in SCOPE_KINDS.items()}
_ACTION_NUMBERS: dict[BulkAction, pb.BulkAction.ValueType] = {
    action: pb.BulkAction.ValueType(number) for number, action in BULK_ACTIONS.items()
}
_STATE_NUMBERS = {
    BulkState.RUNNING: pb.BULK_OPERATION_STATE_RUNNING,
    BulkState.COMPLETED: pb.BULK_OPERATION_STATE_COMPLETED,
    BulkState.FAILED: pb.BULK_OPERATION_STATE_FAILED,
}


def pause(value: Pause) -> pb.Pause:
    message = pb.Pause(
        pause_id=value.id,
        scope=pb.PauseScope(
            kind=_SCOPE_NUMBERS.get(value.scope.kind, pb.PAUSE_SCOPE_KIND_UNSPECIFIED),
            value=value.scope.value,
        ),
        include_transactional=value.include_transactional,
        reason=value.reason,
        created_at=timestamp(value.created_at),
        created_by=value.created_by or "",
    )
    if value.resumed_at is not None:
        message.resumed_at.CopyFrom(timestamp(value.resumed_at))
        message.resumed_by = value.resumed_by or ""
    return message


def bulk_operation(progress: BulkProgress) -> pb.BulkOperation:
    message = pb.BulkOperation(
        job_id=progress.job_id,
        action=_ACTION_NUMBERS[progress.action]
        if progress.action is not None
        else pb.BULK_ACTION_UNSPECIFIED,
        state=_STATE_NUMBERS.get(progress.state, pb.BULK_OPERATION_STATE_UNSPECIFIED),
        total=progress.total,
        completed=progress.completed,
        failed=progress.failed,
        reason=progress.reason,
        query=progress.query,
    )
    if progress.started_at is not None:
        message.started_at.CopyFrom(timestamp(progress.started_at))
    if progress.closed_at is not None:
        message.closed_at.CopyFrom(timestamp(progress.closed_at))
    return message
