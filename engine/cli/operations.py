"""``aftercare ops ...``: pause and resume sending, and bulk operations on journeys,
through the gRPC API (OperationsService; the key needs the journeys:admin scope).

    aftercare ops pause --step cross_sell --reason "wrong price in the template"
    aftercare ops pauses
    aftercare ops resume pause-1a2b3c4d5e6f7a8b
    aftercare ops bulk cancel --plan default --started-before 2026-12-01 --reason "..."
    aftercare ops job aftercare-cancel-0123456789abcdef
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from aftercare.v1 import journey_pb2
from aftercare.v1 import operations_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from clients import AftercareClient
from engine.cli.connection import ApiKeyOption, call_api

ops_app = typer.Typer(
    help="Pause sending and act on many journeys at once (journeys:admin).",
    no_args_is_help=True,
)


STAGE_NAMES = {
    name.removeprefix("JOURNEY_STAGE_").lower(): number
    for name, number in journey_pb2.JourneyStage.items()
    if number != journey_pb2.JOURNEY_STAGE_UNSPECIFIED
}
_SCOPE_NAMES = {
    pb.PAUSE_SCOPE_KIND_PLAN: "plan",
    pb.PAUSE_SCOPE_KIND_STEP: "step",
    pb.PAUSE_SCOPE_KIND_CATEGORY: "category",
    pb.PAUSE_SCOPE_KIND_TEMPLATE: "template",
}
_STATE_NAMES = {
    pb.BULK_OPERATION_STATE_RUNNING: "running",
    pb.BULK_OPERATION_STATE_COMPLETED: "completed",
    pb.BULK_OPERATION_STATE_FAILED: "failed",
}
# How often the progress of a bulk operation is asked for.
POLL_SECONDS = 1.0


class Action(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    PAUSE_ALL = "pause-all"
    RESUME = "resume"


_ACTIONS = {
    Action.CANCEL: pb.BULK_ACTION_CANCEL,
    Action.PAUSE: pb.BULK_ACTION_PAUSE,
    Action.PAUSE_ALL: pb.BULK_ACTION_PAUSE_ALL,
    Action.RESUME: pb.BULK_ACTION_RESUME,
}


def _when(value: Timestamp) -> str:
    return value.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(pause: pb.Pause) -> str:
    scope = f"{_SCOPE_NAMES.get(pause.scope.kind, '?')}={pause.scope.value}"
    held = "every message" if pause.include_transactional else "non-transactional messages"
    by = f" by key {pause.created_by}" if pause.created_by else ""
    return (
        f"{pause.pause_id}  {scope}  ({held})  since {_when(pause.created_at)}{by}"
        f"  reason: {pause.reason}"
    )


@ops_app.command("pause")
def pause(
    reason: Annotated[str, typer.Option(help="Why (required; shown with the pause).")],
    plan: Annotated[str, typer.Option(help="Hold every message of this plan.")] = "",
    step: Annotated[str, typer.Option(help="Hold this step's messages, e.g. cross_sell.")] = "",
    category: Annotated[
        str, typer.Option(help="transactional, relationship, feedback, support or marketing.")
    ] = "",
    template: Annotated[str, typer.Option(help="Hold the messages of this template.")] = "",
    include_transactional: Annotated[
        bool, typer.Option(help="Hold transactional messages of the scope too.")
    ] = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Pause sending in one scope, at once, in every journey (asleep or not)."""
    given = [
        (kind, value)
        for kind, value in (
            (pb.PAUSE_SCOPE_KIND_PLAN, plan),
            (pb.PAUSE_SCOPE_KIND_STEP, step),
            (pb.PAUSE_SCOPE_KIND_CATEGORY, category),
            (pb.PAUSE_SCOPE_KIND_TEMPLATE, template),
        )
        if value
    ]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --plan, --step, --category, --template")
    kind, value = given[0]
    paused = call_api(
        lambda client: client.pause_sending(
            kind, value, reason=reason, include_transactional=include_transactional
        ),
        api_key,
    )
    typer.echo(f"paused: {_describe(paused)}")
    typer.echo(f"lift it with: aftercare ops resume {paused.pause_id}")


@ops_app.command("resume")
def resume(pause_id: str, api_key: ApiKeyOption = None) -> None:
    """Lift a pause: held messages go out now (or are dropped if stale by now)."""
    answer = call_api(lambda client: client.resume_sending(pause_id), api_key)
    typer.echo(f"resumed: {answer.pause.pause_id} at {_when(answer.pause.resumed_at)}")
    if answer.job_id:
        typer.echo(f"journeys holding a message are told by job {answer.job_id}")
    else:
        typer.echo("journeys holding a message are told one by one (Temporal was busy)")


@ops_app.command("pauses")
def pauses(api_key: ApiKeyOption = None) -> None:
    """The pauses in force, oldest first."""
    listed = call_api(lambda client: client.list_pauses(), api_key)
    if not listed.pauses:
        typer.echo("no pauses: everything is being sent", err=True)
    for item in listed.pauses:
        typer.echo(_describe(item))


def _instant(option: str, value: str) -> Timestamp | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{option}: an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T10:00Z"
        ) from None
    stamp = Timestamp()
    stamp.FromDatetime(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return stamp


@ops_app.command("bulk")
def bulk(
    action: Annotated[Action, typer.Argument(help="What to do to each journey selected.")],
    plan: Annotated[str, typer.Option(help="Plan id (any version) or id@vN.")] = "",
    stage: Annotated[str, typer.Option(help=", ".join(STAGE_NAMES))] = "",
    customer: Annotated[str, typer.Option(help="Internal customer id.")] = "",
    started_after: Annotated[str, typer.Option(help="ISO 8601; UTC unless it says.")] = "",
    started_before: Annotated[str, typer.Option(help="ISO 8601; UTC unless it says.")] = "",
    paused: Annotated[
        bool | None, typer.Option("--paused/--not-paused", help="Only (not) paused journeys.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (required unless --dry-run).")] = "",
    dry_run: Annotated[bool, typer.Option(help="Only count the journeys.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before acting.")] = False,
    rate: Annotated[int, typer.Option(help="Journeys per second (0: Temporal's default, 50).")] = 0,
    api_key: ApiKeyOption = None,
) -> None:
    """Cancel, pause or resume every running journey the filter selects.

    Prints how many match first, asks (unless --yes), then follows the progress."""
    if stage and stage not in STAGE_NAMES:
        raise typer.BadParameter(f"unknown stage; one of {', '.join(STAGE_NAMES)}")
    if not dry_run and not reason.strip():
        # Asked before anything, as the API would: not after counting and asking.
        typer.echo("reason: is required (why; shown with the operation)", err=True)
        raise typer.Exit(code=2)
    journeys = pb.JourneyFilter(
        plan=plan,
        stage=STAGE_NAMES.get(stage, journey_pb2.JOURNEY_STAGE_UNSPECIFIED),
        customer_id=customer,
        started_after=_instant("--started-after", started_after),
        started_before=_instant("--started-before", started_before),
        paused=paused,
    )
    kind = _ACTIONS[action]

    counted = call_api(
        lambda client: client.start_bulk_operation(kind, journeys, dry_run=True), api_key
    )
    typer.echo(f"{counted.count} running journey(s) match: {counted.query}")
    if dry_run or counted.count == 0:
        return
    if not yes and not typer.confirm(f"{action} {counted.count} journey(s)?"):
        raise typer.Exit(code=1)
    started = call_api(
        lambda client: client.start_bulk_operation(
            kind, journeys, reason=reason, max_operations_per_second=rate
        ),
        api_key,
    )
    typer.echo(f"started job {started.job_id} on {started.count} journey(s)")
    _follow(started.job_id, api_key)


@ops_app.command("job")
def job(
    job_id: str,
    follow: Annotated[bool, typer.Option(help="Print progress until it is done.")] = True,
    api_key: ApiKeyOption = None,
) -> None:
    """A bulk operation's progress."""
    if follow:
        _follow(job_id, api_key)
    else:
        _print_progress(call_api(lambda client: client.get_bulk_operation(job_id), api_key))


def _print_progress(operation: pb.BulkOperation) -> None:
    state = _STATE_NAMES.get(operation.state, "unknown")
    typer.echo(
        f"{operation.job_id}: {state}, {operation.completed + operation.failed}"
        f"/{operation.total} done, {operation.failed} failed"
    )


def _follow(job_id: str, api_key: str | None) -> None:
    async def watch(client: AftercareClient) -> pb.BulkOperation:
        shown: tuple[int, int, int, int] | None = None
        while True:
            operation = await client.get_bulk_operation(job_id)
            progress = (operation.state, operation.total, operation.completed, operation.failed)
            if progress != shown:
                _print_progress(operation)
                shown = progress
            if operation.state != pb.BULK_OPERATION_STATE_RUNNING:
                return operation
            await asyncio.sleep(POLL_SECONDS)

    final = call_api(watch, api_key)
    if final.state != pb.BULK_OPERATION_STATE_COMPLETED:
        raise typer.Exit(code=1)
