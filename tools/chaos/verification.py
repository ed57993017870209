"""After the faults: wait until every journey has ended, then prove that each ended in
the expected state and that every due message went out exactly once.

Three records are compared, each kept by a different party:

* the journeys' own final state (the workflow result): stage, steps, messages sent;
* the message ledger (our database): one ``sent`` row per message, with the provider's
  id (the email's Message-ID, Twilio's message SID);
* what the providers received: the mail sink's emails (by Message-ID, which is
  deterministic per message, so a resend shows as a repeated id) and the Twilio
  fake's accepted messages (by SID, which is new per request, so a resend shows as a
  SID the ledger does not know).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aftercare.v1 import journey_pb2 as pb
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from activities.sms.twilio_sender import ledger_key_in
from engine.devstack.twilio_fake import FakeMessage
from engine.messaging.ledger import idempotency_key
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import Message, MessageStatus
from tools.chaos.harness import CHAOS_PLANS_DIR, ChaosRun
from workflows.contracts import Delivery
from workflows.ids import journey_id_for
from workflows.plans.catalogue import load_catalogue
from workflows.plans.model import TriggerKind
from workflows.state import JourneyState
from workflows.vocabulary import EventType, Stage

# How many problems of one kind are spelled out (the counts cover all of them).
_SHOWN = 5
_RESULT_CALLS_IN_FLIGHT = 20
_VISIBILITY_WAIT_SECONDS = 30.0
# After the last journey ended: room for a late duplicate to land, if there is one.
_LATE_ARRIVAL_SECONDS = 1.0
# An email resend counts as caused by a kill when the worker was killed at most this
# long after the provider accepted the first copy (the acceptance was never recorded)
# or before it (the message was on its way: the provider took it from a dead sender,
# as a busy server reads a request the client sent just before it died).
RESIDUAL_WINDOW = timedelta(seconds=2)

StateCheck = Callable[[str, JourneyState], list[str]]


def expected_messages(events: tuple[EventType, ...]) -> list[tuple[str, str]]:
    """(step, channel) of every message a chaos journey owes once it received
    ``events``: each step triggered by the start or by one of those events, on its
    first channel (every chaos order has an email address and a mobile number)."""
    plan = load_catalogue(CHAOS_PLANS_DIR)["chaos"].plan
    owed = []
    for step in plan.steps:
        trigger = step.trigger
        if trigger.on == TriggerKind.START or (
            trigger.on == TriggerKind.EVENT and trigger.event in events
        ):
            owed.append((step.id, step.channels[0].value))
    return owed


ALL_EVENTS = (EventType.SHIPPED, EventType.OUT_FOR_DELIVERY, EventType.DELIVERED)


@dataclass
class Verification:
    journeys: int
    completed: int = 0
    expected: int = 0
    sent: int = 0  # ledger rows marked sent
    received: int = 0  # emails in the sink + SMS accepted by the Twilio fake
    duplicates: int = 0
    # Of the duplicates: emails resent because a SIGKILL hit between the provider's
    # acceptance and the ledger write (the residual window, README "Exactly-once").
    resent_after_kill: int = 0
    missing: int = 0
    problems: list[str] = field(default_factory=list)
    # Facts that are not failures: how many sends needed more than one attempt...
    observed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def problem(self, what: str, examples: list[str] | None = None) -> None:
        if examples:
            shown = ", ".join(examples[:_SHOWN])
            more = f" (+{len(examples) - _SHOWN} more)" if len(examples) > _SHOWN else ""
            what = f"{what}: {shown}{more}"
        self.problems.append(what)


async def verify(
    run: ChaosRun, orders: list[str], *, check_state: StateCheck | None = None
) -> tuple[Verification, dict[str, JourneyState]]:
    """Wait for quiescence, then compare journeys, ledger, mail sink and Twilio fake."""
    result = Verification(journeys=len(orders))
    owed = expected_messages(ALL_EVENTS)
    still_running = await _wait_until_ended(run, len(orders), run.config.settle_seconds)
    if still_running:
        result.problem(
            f"{still_running} journeys still running {run.config.settle_seconds:.0f} s "
            "after the faults ended"
        )
    else:
        run.note("every journey has ended; checking")
    states = await _final_states(run, orders, result)
    await asyncio.sleep(_LATE_ARRIVAL_SECONDS)

    expected_keys: set[str] = set()
    for order_id in orders:
        journey_id = journey_id_for(order_id)
        for step, channel in owed:
            expected_keys.add(idempotency_key(journey_id, step, 0, channel))
    result.expected = len(expected_keys)

    for order_id, state in states.items():
        for problem in _state_problems(state, owed):
            result.problem(f"{order_id}: {problem}")
        if check_state is not None:
            for problem in check_state(order_id, state):
                result.problem(f"{order_id}: {problem}")
        repeats = Counter(
            (m.step, m.channel) for m in state.sent if m.status == Delivery.SENT
        ).values()
        result.duplicates += sum(n - 1 for n in repeats if n > 1)

    rows = await _ledger_rows(run)
    sent_rows = {row.idempotency_key: row for row in rows if row.status == MessageStatus.SENT}
    result.sent = len(sent_rows)
    unsent = sorted(k for k in expected_keys if k not in sent_rows)
    if unsent:
        statuses = {row.idempotency_key: row.status for row in rows}
        result.problem(
            f"{len(unsent)} due messages not sent according to the ledger",
            [f"{key} ({statuses.get(key, 'no row')})" for key in unsent],
        )
    unexpected = sorted(
        row.idempotency_key for row in rows if row.idempotency_key not in expected_keys
    )
    if unexpected:
        result.problem(f"{len(unexpected)} ledger rows for messages not due", unexpected)
    result.missing += len(unsent)
    retried = [row for row in rows if row.attempts > 1]
    result.observed.append(
        f"ledger: {len(retried)} of {len(rows)} messages needed more than one attempt "
        f"(most: {max((row.attempts for row in rows), default=0)})"
    )

    _compare_emails(run, sent_rows.values(), result)
    _compare_texts(run, sent_rows.values(), result)
    await _check_listing(run, len(orders), result)
    return result, states


def _state_problems(state: JourneyState, owed: list[tuple[str, str]]) -> list[str]:
    problems = []
    if state.stage != Stage.COMPLETED:
        problems.append(f"ended in stage {state.stage}, expected {Stage.COMPLETED}")
    sent = sorted((m.step, str(m.channel)) for m in state.sent if m.status == Delivery.SENT)
    if sorted(set(sent)) != sorted(owed):
        problems.append(f"journey says it sent {sent}, expected {sorted(owed)}")
    not_sent = [step for step, _ in owed if step not in state.steps]
    if not_sent:
        problems.append(f"steps never resolved: {not_sent}")
    return problems


async def _wait_until_ended(run: ChaosRun, count: int, seconds: float) -> int:
    """Poll visibility until all ``count`` journeys of the run have closed; returns how
    many were still running at the deadline."""
    client, queue = run.stack.client, run.settings.task_queue
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    running = count
    while loop.time() < deadline:
        try:
            total = await client.count_workflows(f"TaskQueue = '{queue}'")
            open_ = await client.count_workflows(
                f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"
            )
        except Exception:  # the server may be restarting: ask again
            await asyncio.sleep(1.0)
            continue
        running = open_.count + max(0, count - total.count)
        if running == 0:
            return 0
        await asyncio.sleep(1.0)
    return running


async def _final_states(
    run: ChaosRun, orders: list[str], result: Verification
) -> dict[str, JourneyState]:
    gate = asyncio.Semaphore(_RESULT_CALLS_IN_FLIGHT)
    states: dict[str, JourneyState] = {}
    failures: list[str] = []

    async def one(order_id: str) -> None:
        handle = run.stack.client.get_workflow_handle(
            journey_id_for(order_id), result_type=JourneyState
        )
        async with gate:
            try:
                description = await handle.describe()
                if description.status != WorkflowExecutionStatus.COMPLETED:
                    failures.append(f"{order_id} {description.status}")
                    return
                states[order_id] = await asyncio.wait_for(handle.result(), 30)
            except (WorkflowFailureError, TimeoutError) as err:
                failures.append(f"{order_id} {type(err).__name__}")

    await asyncio.gather(*(one(order_id) for order_id in orders))
    result.completed = len(states)
    if failures:
        result.problem(f"{len(failures)} journeys did not complete", sorted(failures))
    return states


async def _ledger_rows(run: ChaosRun) -> list[Message]:
    engine = create_engine(run.settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list(await session.scalars(select(Message).order_by(Message.id)))
    finally:
        await engine.dispose()


def kill_near(accepted_at: datetime, kills: Iterable[datetime]) -> timedelta | None:
    """The SIGKILL nearest ``accepted_at`` within ``RESIDUAL_WINDOW`` either side, as
    its time minus the acceptance's (negative: the kill came first); None if none."""
    gaps = [kill - accepted_at for kill in kills if abs(kill - accepted_at) <= RESIDUAL_WINDOW]
    return min(gaps, key=abs, default=None)


@dataclass
class _Resends:
    """Copies sent again, split by whether a kill explains them."""

    after_kill: list[timedelta] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)

    def judge(self, what: str, accepted_at: datetime, kills: list[datetime]) -> None:
        gap = kill_near(accepted_at, kills)
        if gap is None:
            self.unexplained.append(what)
        else:
            self.after_kill.append(gap)

    def report(self, kind: str, result: Verification) -> None:
        result.duplicates += len(self.after_kill) + len(self.unexplained)
        result.resent_after_kill += len(self.after_kill)
        if self.unexplained:
            result.problem(f"{len(self.unexplained)} {kind} sent twice", self.unexplained)
        if self.after_kill:
            millis = sorted(round(gap.total_seconds() * 1000) for gap in self.after_kill)
            when = (
                f"{millis[0]} ms"
                if millis[0] == millis[-1]
                else f"{millis[0]} to {millis[-1]} ms (median {millis[len(millis) // 2]} ms)"
            )
            result.observed.append(
                f"{len(self.after_kill)} {kind} sent again because the worker was SIGKILLed "
                f"{when} from the provider's acceptance (negative: the message was on its "
                "way), before the ledger recorded it (the residual window)"
            )


def _compare_emails(run: ChaosRun, rows: Iterable[Message], result: Verification) -> None:
    recorded = {str(row.provider_message_id) for row in rows if row.channel == "email"}
    copies: dict[str, list[datetime]] = {}
    for mail in run.stack.sink.handler.received:
        copies.setdefault(str(mail.message["Message-ID"]), []).append(mail.received_at)
    result.received += sum(len(times) for times in copies.values())
    # Message-IDs are deterministic per message: every copy after the first is a
    # resend, sent because the copy before it was never recorded.
    resends = _Resends()
    for message_id, times in copies.items():
        for accepted_at in sorted(times)[:-1]:
            resends.judge(message_id, accepted_at, run.worker.killed_at)
    resends.report("emails", result)
    lost = sorted(recorded - set(copies))
    if lost:
        result.problem(f"{len(lost)} emails the ledger calls sent never reached the sink", lost)
    result.missing += len(lost)
    unrecorded = sorted(set(copies) - recorded)
    if unrecorded:
        result.problem(
            f"{len(unrecorded)} emails received that the ledger does not record as sent",
            unrecorded,
        )
    result.duplicates += len(unrecorded)


def _compare_texts(run: ChaosRun, rows: Iterable[Message], result: Verification) -> None:
    recorded = {
        row.idempotency_key: str(row.provider_message_id) for row in rows if row.channel == "sms"
    }
    compare_texts(recorded, run.twilio.messages, result)


def compare_texts(
    recorded: dict[str, str], accepted: list[FakeMessage], result: Verification
) -> None:
    """The SMS the ledger records as sent (``recorded``: SID by ledger key) against
    those the provider accepted.

    No text may go out twice, kill or not: each names its ledger row in its
    StatusCallback URL, and the provider's first delivery report (a second after
    the acceptance) records a row the killed sender left claimed, long before the
    attempt's 30 s timeout lets a retry look at it.
    """
    result.received += len(accepted)
    lost = sorted(set(recorded.values()) - {message.sid for message in accepted})
    if lost:
        result.problem(f"{len(lost)} SMS the ledger calls sent the provider never accepted", lost)
    result.missing += len(lost)
    # The copies of one message are known by the row they name: every copy after the
    # first is a resend.
    copies: dict[str, list[FakeMessage]] = {}
    for message in accepted:
        copies.setdefault(ledger_key_in(message.status_callback) or message.sid, []).append(message)
    resent: list[str] = []
    unrecorded: list[str] = []
    for key, messages in copies.items():
        by_time = sorted(messages, key=lambda message: message.date_created)
        resent.extend(message.sid for message in by_time[:-1])
        if recorded.get(key) not in {message.sid for message in messages}:
            unrecorded.append(by_time[-1].sid)
    if resent:
        result.problem(
            f"{len(resent)} SMS sent twice (no delivery report recorded the first copy "
            "before the retry)",
            resent,
        )
    result.duplicates += len(resent)
    if unrecorded:
        result.problem(
            f"{len(unrecorded)} SMS accepted that the ledger does not record as sent", unrecorded
        )
    result.duplicates += len(unrecorded)


async def _check_listing(run: ChaosRun, count: int, result: Verification) -> None:
    """ListJourneys (Temporal visibility, through the API) shows every journey completed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _VISIBILITY_WAIT_SECONDS
    listed = 0
    while True:
        listed = 0
        token = b""
        while True:
            page = await run.api.list_journeys(
                stage=pb.JOURNEY_STAGE_COMPLETED, page_size=1000, page_token=token
            )
            listed += len(page.journeys)
            token = page.next_page_token
            if not token:
                break
        if listed == count or loop.time() > deadline:
            break
        await asyncio.sleep(1.0)  # visibility follows the journeys with a short lag
    if listed != count:
        result.problem(f"ListJourneys shows {listed} of {count} journeys completed")
