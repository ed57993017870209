"""OrderJourney: the durable journey of one order, interpreting its pinned plan.

Deterministic code only: time comes from ``workflow.now()``, waiting from
``workflow.wait_condition``; every send and lookup is an activity. The rules of
*what* is due *when* live in the pure ``workflows.scheduler``; this class runs
them against the clock and the events, and records what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    # Plain data and pure functions: loaded once outside the sandbox, so the
    # datetime and enum types in them are the real ones the converter expects.
    import workflows.search_attributes as sa
    from workflows.contracts import (
        CHOOSE_PLAN_ACTIVITY,
        MESSAGE_UNDELIVERED_SIGNAL,
        OPEN_SUPPORT_TICKET_ACTIVITY,
        PAUSE_JOURNEY_ALL_SIGNAL,
        PAUSE_JOURNEY_SIGNAL,
        REPORT_JOURNEY_EVENTS_ACTIVITY,
        RESUME_JOURNEY_SIGNAL,
        SEND_MESSAGE_ACTIVITY,
        SENDING_RESUMED_SIGNAL,
        SUPERSEDE_REPLENISHMENT_ACTIVITY,
        ChoosePlanInput,
        Delivery,
        JourneyEventNote,
        ReportJourneyEventsInput,
        SendMessageInput,
        SentMessage,
        SupersedeInput,
        SupersedeResult,
        SupportTicketInput,
        SupportTicketResult,
        UndeliveredMessage,
        channel_task_queue,
    )
    from workflows.events import apply_event
    from workflows.experiments import ExperimentArm, arm_for, assign
    from workflows.frequency import CapCheck, caps_for, priority_of
    from workflows.metrics import EVENT_TO_MESSAGE, STARTED, STEP_LATENESS, seconds_between
    from workflows.orders import Order, OrderEvent
    from workflows.overrides import (
        CustomerOverrides,
        channels_for,
        plan_for,
        refusal_reason,
    )
    from workflows.plans.model import HOLDOUT_VARIANT, Category, Hook, PinnedPlan, TriggerKind
    from workflows.scheduler import (
        REPLENISHMENT_PREFIX,
        RETURN_EVENTS,
        Agenda,
        PlannedSend,
        Skip,
        build_agenda,
        stage_for,
        with_deferrals,
    )
    from workflows.state import (
        HeldSend,
        JourneyInput,
        JourneyPause,
        JourneyState,
        ScheduledStep,
        StepOutcome,
        StepRecord,
        TimelineEntry,
    )
    from workflows.timing import local_iso
    from workflows.versioning import continue_as_new_versioning
    from workflows.vocabulary import Channel, EventType, Stage

# Transactional mail keeps trying: a customer must learn their order shipped even
# if the mail server is down for hours. The backoff caps at five minutes.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["PermanentDeliveryFailure"],
)
# Anything else has a wall-clock budget: late marketing is worse than none.
DEFAULT_SEND_BUDGET = timedelta(days=1)
# One attempt: long enough for a slow SMTP exchange, short enough that a worker that
# died mid-send is noticed and the send retried on another worker soon.
SEND_ATTEMPT_TIMEOUT = timedelta(seconds=30)
# A send heartbeats while it works (every few seconds): a worker that died is
# noticed this soon, and a cancelled send hears of it.
SEND_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
LOOKUP_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=30))
# The support desk is told beside the journey, never in its way: an outage is retried
# with backoff for this long, then recorded; a refusal is recorded at once.
SUPPORT_DESK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=30),
    non_retryable_error_types=["SupportDeskRefused"],
)
SUPPORT_DESK_BUDGET = timedelta(days=2)
# Sends ask for the customer's frequency cap on this branch; journeys whose history
# has no such marker replay their sends without it.
FREQUENCY_CAP_PATCH = "frequency-cap"
# Sends run beside the journey's loop on this branch: events take effect while a send
# retries (a moot send is cancelled, a confirmation overtakes a marketing message), and
# the support desk is told whatever became of the apology. Histories without the
# marker run the sequential loop they were recorded with.
SENDS_BESIDE_EVENTS_PATCH = "sends-beside-events"
# Holding sends for an operator's pause (search attribute, held steps). Asked only when
# a journey first holds something, never at the start: a journey that was asleep when
# pauses shipped must be pausable too, and a patch asked while replaying its older
# history would answer False for the rest of the run.
PAUSABLE_SENDS_PATCH = "pausable-sends"
# A text reported undelivered falls back to its step's next channel. Asked only when
# such a report is acted on: no history recorded before it holds one.
UNDELIVERED_FALLBACK_PATCH = "undelivered-fallback"
# Steps with an experiment send their customer's arm (or hold the message back for the
# holdout). Asked only when a step has an experiment: no recorded history's plan has
# one, so they replay without the marker.
EXPERIMENTS_PATCH = "experiments"
# Stage changes and the journey's end are reported to outbound subscribers through a
# local activity. Asked in the run's first task like SENDS_BESIDE_EVENTS_PATCH: runs
# recorded before it replay without reporting, and report from their next run on.
JOURNEY_EVENTS_PATCH = "journey-events"
# Notes kept while the database cannot take them; older ones give way.
MAX_UNREPORTED = 100
# A send a scope pause holds is asked again after as long as it has been held, within
# these bounds (1 h, 2 h, 4 h, ... then every 12 h), and at its stale limit at the
# latest. "sending_resumed" asks at once; the asking only catches a journey that
# missed it, so a long pause over many journeys costs a few activities each, not one
# an hour (held two days: asked again 8 times, not 48).
PAUSE_RECHECK_FIRST = timedelta(hours=1)
PAUSE_RECHECK_LONGEST = timedelta(hours=12)
# One the journey's own pause holds waits for resume_journey; it wakes at its stale
# limit (to be dropped), or daily when it has none.
JOURNEY_PAUSE_RECHECK = timedelta(days=1)
MAX_TIMELINE = 300


@workflow.defn
class OrderJourney:
    @workflow.init
    def __init__(self, journey: JourneyInput) -> None:
        self._order: Order = journey.order
        self._plan: PinnedPlan | None = journey.plan
        self._customer_has_other_journeys = journey.customer_has_other_journeys
        self._reminders_this_run = 0
        if journey.state is not None:
            self._state = journey.state
            self._state.runs += 1
        else:
            self._state = JourneyState(
                journey_id=workflow.info().workflow_id,
                order_id=journey.order.order_id,
                customer_id=journey.order.customer.id,
                stage=Stage.ORDERED,
                started_at=workflow.now(),
                timezone=journey.order.customer.timezone,
            )
        if journey.overrides is not None and self._state.overrides is None:
            self._adopt(journey.overrides)
        # Set by the preferences_changed signal: wakes the journey to re-plan at once.
        self._overrides_changed = False
        # Sends under way beside the loop, by (agenda key, iteration); those cancelled
        # because an event made them moot, with why; the support desk's call.
        self._in_flight: dict[tuple[str, int], tuple[PlannedSend, asyncio.Task[None]]] = {}
        self._mooted: dict[tuple[str, int], str] = {}
        self._desk: asyncio.Task[None] | None = None
        self._sends_beside = False
        # Set by the pause signals: wakes the journey to look at its held sends again.
        self._controls_changed = False
        self._reports_events = False

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyState:
        try:
            if self._state.runs == 1 and not self._state.timeline:
                self._note("stage", "journey started")
            # Asked first, in the run's first workflow task: a patch is judged by the
            # task it is asked in, and a slow plan choice (a local activity) can end
            # that task early, so asked after it the answer could differ on replay.
            self._sends_beside = workflow.patched(SENDS_BESIDE_EVENTS_PATCH)
            self._reports_events = workflow.patched(JOURNEY_EVENTS_PATCH)
            if self._plan is None:
                plan = await self._choose_plan()
            else:
                plan = self._plan
                if not self._state.plan_id:  # given at start (simulation, or a caller's choice)
                    self._pin(plan)
            if self._sends_beside:
                return await self._follow(plan)
            return await self._follow_sequentially(plan)
        except (asyncio.CancelledError, ActivityError) as err:
            if not is_cancelled_exception(err):
                raise
            for _, task in self._in_flight.values():
                task.cancel()  # the sends under way are asked to stop too
            # An operator cancelled the journey (API or Temporal UI), while it slept
            # or while an activity ran: record it so the query shows why it ended,
            # send nothing more, end as cancelled.
            self._set_stage(Stage.STOPPED)
            self._note("note", "journey cancelled by an operator; nothing more will be sent")
            self._state.scheduled = []
            self._state.waiting_for = []
            self._state.next_step = "Nothing: the journey was cancelled"
            self._show_details()
            self._note_event("journey.ended", {"stage": Stage.STOPPED, "reason": "cancelled"})
            await self._report_events()
            raise

    @workflow.signal(name="record_event")
    def record_event(self, event: OrderEvent) -> None:
        if event.event_id in self._state.seen_event_ids:
            self._note("event", f"duplicate event {event.event_id} ({event.type}) ignored")
            return
        self._state.seen_event_ids.append(event.event_id)
        self._state.pending_events.append(event)

    @workflow.signal(name="preferences_changed")
    def preferences_changed(self, overrides: CustomerOverrides) -> None:
        """The customer changed their preferences: skip what they no longer want and
        apply their channel, quiet hours and time zone to what is still to come."""
        current = self._state.overrides
        if current is not None and overrides.revision < current.revision:
            # Two notifications crossed on the way: the newer one already arrived.
            self._note("note", f"older preferences (revision {overrides.revision}) ignored")
            return
        self._adopt(overrides)
        self._note("note", f"customer preferences changed: {overrides.describe()}")
        self._overrides_changed = True

    @workflow.signal(name=SENDING_RESUMED_SIGNAL)
    def sending_resumed(self) -> None:
        """A scope pause was lifted: the sends pauses hold are asked again now (a
        pause still in force holds them again). JourneyPaused stays as it is until
        their answers come."""
        released = self._release_holds(lambda held: not held.by_journey)
        if released:
            self._note("note", f"sending resumed: {', '.join(released)} asked again")
        self._controls_changed = True

    @workflow.signal(name=PAUSE_JOURNEY_SIGNAL)
    def pause_journey(self) -> None:
        """An operator holds this journey's non-transactional sends until resume_journey."""
        self._pause_journey(JourneyPause.NON_TRANSACTIONAL)

    @workflow.signal(name=PAUSE_JOURNEY_ALL_SIGNAL)
    def pause_journey_all(self) -> None:
        """An operator holds all of this journey's sends, transactional ones too."""
        self._pause_journey(JourneyPause.ALL)

    @workflow.signal(name=RESUME_JOURNEY_SIGNAL)
    def resume_journey(self) -> None:
        """The journey's own pause is lifted: what it held is due again now."""
        state = self._state
        if state.journey_pause is None:
            return
        state.journey_pause = None
        released = self._release_holds(lambda held: held.by_journey)
        due = f": {', '.join(released)} due again" if released else ""
        self._note("note", f"journey resumed by an operator{due}")
        self._sync_paused()
        self._controls_changed = True

    @workflow.signal(name=MESSAGE_UNDELIVERED_SIGNAL)
    def message_undelivered(self, report: UndeliveredMessage) -> None:
        """The provider reported a text of this journey undelivered or failed: the
        loop sends the step's next channel while the step is still timely."""
        self._state.undelivered.append(report)
        self._controls_changed = True

    @workflow.query(name="state")
    def state(self) -> JourneyState:
        return self._state

    # -- the journey ---------------------------------------------------------

    async def _choose_plan(self) -> PinnedPlan:
        # A local activity: the catalogue is in the worker's memory, so choosing runs
        # inside the first workflow task instead of a round trip through a task
        # queue, and the confirmation goes out that much sooner. Its result is still
        # recorded in history, which is what pins the plan.
        pinned: PinnedPlan = await workflow.execute_local_activity(
            CHOOSE_PLAN_ACTIVITY,
            ChoosePlanInput(order=self._order),
            result_type=PinnedPlan,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LOOKUP_RETRY,
            summary="choose plan",
        )
        self._pin(pinned)
        return pinned

    def _pin(self, pinned: PinnedPlan) -> None:
        """Keep the plan in the state: a sleeping journey never rereads the files."""
        self._plan = pinned
        state = self._state
        state.plan_id, state.plan_version = pinned.plan.id, pinned.plan.version
        state.plan_hash = pinned.content_hash
        workflow.upsert_search_attributes([sa.JOURNEY_PLAN.value_set(pinned.label)])
        self._note("note", f"plan {pinned.label} ({pinned.content_hash[:12]}) pinned")

    async def _follow(self, pinned: PinnedPlan) -> JourneyState:
        """Sends due now go out one after another, beside this loop, which keeps
        applying events meanwhile: an event that makes the send under way moot
        cancels it, and a transactional message due now does not wait for a
        non-transactional one that is retrying through a provider outage."""
        while True:
            self._overrides_changed = self._controls_changed = False
            self._apply_pending_events()
            if self._state.undelivered:
                await self._fall_back_from_undelivered(pinned)
            agenda = self._settled_agenda(pinned)
            self._forget_moot_holds(agenda)
            self._cancel_moot_sends()
            now = workflow.now()
            self._publish(agenda, now)
            for send in self._sends_to_start(agenda.due(now)):
                self._start_send(send)
            await self._report_events()
            if self._in_flight:
                await workflow.wait_condition(
                    lambda: (
                        bool(self._state.pending_events)
                        or self._overrides_changed
                        or self._controls_changed
                        or any(task.done() for _, task in self._in_flight.values())
                    )
                )
                await self._collect_finished_sends()
                continue
            if pinned.plan.replenishment is not None and not self._state.older_journeys_told:
                # After the confirmation, not before: telling older journeys that
                # these consumables were reordered must never delay it.
                self._state.older_journeys_told = True
                await self._supersede_older_reminders()
                continue
            end = self._end_time(agenda, pinned)
            if end is not None and now >= end:
                await self._desk_finished()
                finished = self._finish()
                await self._report_events()
                return finished
            if self._should_continue_as_new():
                await self._desk_finished()
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    JourneyInput(order=self._order, plan=pinned, state=self._state),
                    initial_versioning_behavior=continue_as_new_versioning(),
                )
            wake = min(t for t in (agenda.next_due(now), end) if t is not None)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        bool(self._state.pending_events)
                        or self._overrides_changed
                        or self._controls_changed
                    ),
                    timeout=wake - now,
                    timeout_summary=self._state.next_step[:100],
                )

    def _sends_to_start(self, due: list[PlannedSend]) -> list[PlannedSend]:
        """One send at a time, in the plan's order, as a customer should read them;
        but a transactional message never waits behind a non-transactional one."""
        waiting = [send for send in due if _flight_key(send) not in self._in_flight]
        if not waiting:
            return []
        under_way = [send for send, _ in self._in_flight.values()]
        if not under_way:
            return waiting[:1]
        if all(send.category != Category.TRANSACTIONAL for send in under_way):
            transactional = [s for s in waiting if s.category == Category.TRANSACTIONAL]
            return transactional[:1]
        return []

    def _start_send(self, send: PlannedSend) -> None:
        async def perform() -> None:
            delivered = await self._perform(send)
            hooked = send.step is not None and send.step.hook == Hook.SUPPORT_TICKET
            if hooked and delivered is not None and self._desk is None:
                # Whether or not the apology reached the customer, the desk hears.
                self._desk = asyncio.create_task(self._open_support_ticket())

        self._in_flight[_flight_key(send)] = (send, asyncio.create_task(perform()))

    def _cancel_moot_sends(self) -> None:
        """Cancel the sends under way whose step the latest events or choices ended
        (the settled agenda recorded them as skipped, with why)."""
        for key, (send, task) in self._in_flight.items():
            record = self._state.steps.get(send.key)
            ended = record is not None and record.outcome == StepOutcome.SKIPPED
            if ended and key not in self._mooted and not task.done():
                assert record is not None
                self._mooted[key] = record.detail
                task.cancel()

    async def _collect_finished_sends(self) -> None:
        for key, (send, task) in list(self._in_flight.items()):
            if not task.done():
                continue
            del self._in_flight[key]
            reason = self._mooted.pop(key, None)
            try:
                await task
            except (asyncio.CancelledError, ActivityError) as err:
                if reason is None or not is_cancelled_exception(err):
                    raise
                label = f"{send.key} #{send.iteration}" if send.iteration else send.key
                self._note("skip", f"{label}: cancelled while under way ({reason})")

    async def _desk_finished(self) -> None:
        """The support desk's call ends before the journey does (or continues as new)."""
        if self._desk is not None:
            await self._desk

    async def _follow_sequentially(self, pinned: PinnedPlan) -> JourneyState:
        """The loop of journeys recorded before sends ran beside it: each due send is
        awaited in turn, and events wait for the send under way."""
        while True:
            self._overrides_changed = self._controls_changed = False
            self._apply_pending_events()
            agenda = self._settled_agenda(pinned)
            self._forget_moot_holds(agenda)
            now = workflow.now()
            self._publish(agenda, now)
            due = agenda.due(now)
            if due:
                for send in due:
                    sent = await self._perform(send)
                    if sent and send.step is not None and send.step.hook == Hook.SUPPORT_TICKET:
                        await self._open_support_ticket_inline()
                    if (
                        self._state.pending_events
                        or self._overrides_changed
                        or self._controls_changed
                    ):
                        break  # events take effect before anything else goes out
                continue
            if pinned.plan.replenishment is not None and not self._state.older_journeys_told:
                # After the confirmation, not before: telling older journeys that
                # these consumables were reordered must never delay it.
                self._state.older_journeys_told = True
                await self._supersede_older_reminders()
                continue
            end = self._end_time(agenda, pinned)
            if end is not None and now >= end:
                return self._finish()
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    JourneyInput(order=self._order, plan=pinned, state=self._state),
                    initial_versioning_behavior=continue_as_new_versioning(),
                )
            wake = min(t for t in (agenda.next_due(now), end) if t is not None)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        bool(self._state.pending_events)
                        or self._overrides_changed
                        or self._controls_changed
                    ),
                    timeout=wake - now,
                    timeout_summary=self._state.next_step[:100],
                )

    def _settled_agenda(self, pinned: PinnedPlan) -> Agenda:
        """The agenda after recording every skip it reveals (a skip can resolve
        steps that depend on it, e.g. a reminder of a request never sent)."""
        while True:
            overrides = self._state.overrides
            agenda = self._customer_agenda(
                build_agenda(plan_for(pinned.plan, overrides), self._current_order(), self._state)
            )
            if not agenda.skips:
                return with_deferrals(agenda, self._state.deferred)
            for skip in agenda.skips:
                self._state.steps[skip.key] = StepRecord(
                    StepOutcome.SKIPPED, workflow.now(), skip.reason
                )
                self._note("skip", f"{skip.key}: {skip.reason}")

    def _customer_agenda(self, agenda: Agenda) -> Agenda:
        """The plan's agenda as the customer's choices leave it: a step whose category
        they refused on every one of its channels is skipped (and says why); the
        others keep the channels still allowed, the preferred one first."""
        overrides = self._state.overrides
        if overrides is None:
            return agenda
        sends: list[PlannedSend] = []
        skips = list(agenda.skips)
        for send in agenda.sends:
            reason = refusal_reason(send.category, send.channels, overrides)
            if reason:
                skips.append(Skip(send.key, reason))
            else:
                channels = channels_for(send.category, send.channels, overrides)
                sends.append(dataclasses.replace(send, channels=channels))
        return Agenda(sends=sends, skips=skips, waiting_for=agenda.waiting_for)

    def _adopt(self, overrides: CustomerOverrides) -> None:
        self._state.overrides = overrides
        self._state.timezone = overrides.timezone or self._order.customer.timezone

    def _apply_pending_events(self) -> None:
        state = self._state
        while state.pending_events:
            event = state.pending_events.pop(0)
            detail = apply_event(state, self._order, event, workflow.now())
            self._note("event", detail)

    async def _fall_back_from_undelivered(self, pinned: PinnedPlan) -> None:
        """Send the step's next channels for each text reported undelivered, once per
        send, while the step is timely (within its ``stale_after``, else the send
        budget, of the text's sending); a report too late, repeated, or for a text
        this journey did not send is noted and changes nothing."""
        reports, self._state.undelivered = self._state.undelivered, []
        for report in reports:
            key = f"{report.step}#{report.iteration}"
            what = f"{report.step} by {report.channel} {report.status}"
            sent = next(
                (
                    m
                    for m in reversed(self._state.sent)
                    if m.step == report.step
                    and m.channel == report.channel
                    and m.status == Delivery.SENT
                    and m.message_id == report.message_id
                ),
                None,
            )
            step = next((s for s in pinned.plan.steps if s.id == report.step), None)
            if key in self._state.fallen_back or sent is None or step is None:
                self._note("note", f"{what}: no fallback (already done, or not a step's text)")
                continue
            if workflow.now() > sent.sent_at + (step.stale_after or DEFAULT_SEND_BUDGET):
                self._note("note", f"{what}: too late for the step's next channel")
                continue
            if not workflow.patched(UNDELIVERED_FALLBACK_PATCH):
                continue
            self._state.fallen_back.append(key)
            channels = channels_for(step.category, step.channels, self._state.overrides)
            after = (
                channels[channels.index(report.channel) + 1 :] if report.channel in channels else ()
            )
            now = workflow.now()
            send = PlannedSend(
                key=step.id,
                step_id=step.id,
                template=sent.template,
                category=step.category,
                channels=after,
                iteration=report.iteration,
                base_at=now,
                due_at=now,
                step=step,
            )
            self._note(
                "message", f"{what} ({report.error_code or 'no code'}): trying {list(after)}"
            )
            await self._send_fallback(send)

    async def _send_fallback(self, send: PlannedSend) -> None:
        for channel in send.channels:
            if self._unreachable(channel):
                continue
            try:
                sent = await self._send_on(send, channel)
            except ActivityError as err:
                _reraise_cancellation(err)
                self._note("note", f"{send.step_id} fallback by {channel} failed")
                return
            if sent.status == Delivery.SENT:
                self._state.sent.append(sent)
                self._note(
                    "message", f"{send.step_id} sent by {channel} after the undelivered text"
                )
                return
            if sent.status in (Delivery.DEFERRED, Delivery.STALE, Delivery.PAUSED):
                self._note("note", f"{send.step_id} fallback by {channel}: {sent.status}")
                return
        self._note("note", f"{send.step_id}: no other channel reached the customer")

    async def _perform(self, send: PlannedSend) -> bool | None:
        """Send on the step's channels in order of preference until one reaches the
        customer; record undeliverable (and why) when none can. True when a channel
        took the message, False when none could or it failed, None when the frequency
        cap deferred or dropped it, or a pause holds it (the step is not over, or not
        attempted)."""
        if self._held_by_journey(send):
            return None
        self._record_lateness(send)
        arm = self._experiment_arm(send)
        if arm is not None:
            send = self._arm_send(send, arm)
        refusals: list[str] = []
        for channel in send.channels:
            reason = self._unreachable(channel)
            if reason:
                refusals.append(f"{channel}: {reason}")
                continue
            try:
                sent = await self._send_on(send, channel, arm)
            except ActivityError as err:
                _reraise_cancellation(err)
                cause = err.cause
                reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
                self._unhold(send.key)
                self._resolve(send, StepOutcome.FAILED, f"not delivered by {channel}: {reason}")
                return False
            if sent.status == Delivery.PAUSED:
                # A pause is no channel's: no fallback; the step is asked again later.
                self._hold(send, sent.detail, by_journey=False)
                return None
            self._unhold(send.key)
            if sent.status == Delivery.HOLDOUT:
                # By design, on no channel: the ledger row counts the holdout's exposure.
                self._resolve(send, StepOutcome.SKIPPED, f"no message: {sent.detail}")
                return False
            if sent.status in (Delivery.DEFERRED, Delivery.STALE):
                # The cap is the customer's, not the channel's: no fallback.
                self._over_cap(send, sent)
                return None
            if sent.status == Delivery.SENT:
                self._record_event_to_message(send)
                self._state.sent.append(sent)
                fallback = f" after {'; '.join(refusals)}" if refusals else ""
                self._resolve(send, StepOutcome.SENT, f"by {channel}{fallback}")
                return True
            refusals.append(f"{channel}: {sent.status}: {sent.detail}")
        detail = "; ".join(refusals) or "no channel listed"
        self._state.sent.append(
            SentMessage(
                step=send.step_id,
                channel=None,
                template=send.template,
                sent_at=workflow.now(),
                message_id="",
                status=Delivery.UNDELIVERABLE,
                detail=detail,
            )
        )
        self._resolve(send, StepOutcome.SKIPPED, f"undeliverable: {detail}")
        return False

    def _record_lateness(self, send: PlannedSend) -> None:
        """How late this send starts against its due time (a metric: recorded only
        when the journey really runs, never on replay, and no history event)."""
        STEP_LATENESS.record(
            seconds_between(send.due_at, workflow.now()),
            {"plan": self._state.plan_id, "step": _step_label(send), "category": send.category},
        )

    def _record_event_to_message(self, send: PlannedSend) -> None:
        """From the journey learning of the event (or starting) to this message sent,
        for a step sent on its trigger alone (nothing else moved its due time)."""
        step = send.step
        if step is None or step.trigger.delay or send.due_at != send.base_at:
            return
        trigger = step.trigger
        since, event = None, STARTED
        if trigger.on == TriggerKind.START:
            since = self._state.started_at
        elif trigger.on == TriggerKind.EVENT and trigger.event is not None:
            since, event = self._state.reported.get(trigger.event), trigger.event.value
        if since is not None:
            EVENT_TO_MESSAGE.record(
                seconds_between(since, workflow.now()),
                {"plan": self._state.plan_id, "step": send.step_id, "event": event},
            )

    def _unreachable(self, channel: Channel) -> str:
        """What the order (and, for push, the customer's devices) says about a channel,
        to spare a pointless activity."""
        customer = self._order.customer
        if channel == Channel.EMAIL and not customer.email:
            return "no email address"
        if channel in (Channel.SMS, Channel.WHATSAPP) and not customer.phone:
            return "no phone number"
        # Unknown (None) still tries the activity, so a history whose overrides never
        # said replays with the same commands.
        overrides = self._state.overrides
        if channel == Channel.PUSH and overrides is not None and overrides.without_push_device:
            return "no app device registered"
        return ""

    async def _send_on(
        self, send: PlannedSend, channel: Channel, arm: ExperimentArm | None = None
    ) -> SentMessage:
        state = self._state
        content = arm.content(arm.variant) if arm is not None else None
        order = self._current_order()
        request = SendMessageInput(
            journey_id=state.journey_id,
            step=send.step_id,
            template=send.template,
            category=send.category.value,
            channel=channel,
            order=order,
            iteration=send.iteration,
            shipment=state.shipment,
            focus_sku=send.focus_sku,
            feedback=state.feedback,
            skus=self._skus_for(send),
            new_address=state.shipping_address,
            run_out_at=send.run_out_at,
            max_sms_segments=self._plan.plan.sms_max_segments if self._plan else 2,
            cap=self._cap_check(send),
            plan_id=state.plan_id,
            stale_at=self._stale_at(send),
            plan_version=state.plan_version,
            experiment=arm,
            subject=content.subject_for(order.customer.locale) if content is not None else "",
        )
        transactional = send.category == Category.TRANSACTIONAL
        stale_after = send.step.stale_after if send.step else None
        sent: SentMessage = await workflow.execute_activity(
            SEND_MESSAGE_ACTIVITY,
            request,
            result_type=SentMessage,
            task_queue=channel_task_queue(workflow.info().task_queue, channel),
            start_to_close_timeout=SEND_ATTEMPT_TIMEOUT,
            heartbeat_timeout=SEND_HEARTBEAT_TIMEOUT,
            # Transactional messages keep trying; anything else has a wall-clock
            # budget, after which it is stale and dropped (recorded as failed).
            schedule_to_close_timeout=None
            if transactional
            else (stale_after or DEFAULT_SEND_BUDGET),
            retry_policy=DELIVERY_RETRY,
            # Beside the loop a send may be cancelled as moot; waiting for the
            # activity's answer tells whether the provider had taken it already.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if self._sends_beside
            else ActivityCancellationType.TRY_CANCEL,
            summary=f"{send.step_id} by {channel}",
        )
        return sent

    def _experiment_arm(self, send: PlannedSend) -> ExperimentArm | None:
        """The customer's arm of the step's experiment, pinned in the state the first
        time (and noted on the timeline); None when the step has no experiment."""
        step = send.step
        if step is None or step.experiment is None or not workflow.patched(EXPERIMENTS_PATCH):
            return None
        experiment = step.experiment
        state = self._state
        variant = state.experiments.get(experiment.id)
        if variant is None or (variant != HOLDOUT_VARIANT and not experiment.variant(variant)):
            variant = assign(state.customer_id, experiment)
            state.experiments[experiment.id] = variant
            self._note("note", f"experiment {experiment.id}: {send.key} assigned {variant}")
            self._show_details()
        return arm_for(step, experiment, variant)

    def _arm_send(self, send: PlannedSend, arm: ExperimentArm) -> PlannedSend:
        """``send`` as the arm has it: its template, and its channels as far as the
        customer's choices allow (the holdout's send stays as planned: the activity
        records it and sends nothing)."""
        step = send.step
        experiment = step.experiment if step is not None else None
        variant = experiment.variant(arm.variant) if experiment is not None else None
        if variant is None:
            return send
        channels = send.channels
        overrides = self._state.overrides
        as_planned = step is not None and set(channels) == set(
            channels_for(send.category, step.channels, overrides)
        )
        if variant.channels and as_planned:
            # Not for a send already narrowed to the step's later channels (a fallback).
            # A variant refused on all its channels keeps the step's (still allowed) ones.
            chosen = channels_for(send.category, variant.channels, overrides)
            channels = chosen or channels
        return dataclasses.replace(
            send, template=variant.template or send.template, channels=channels
        )

    def _cap_check(self, send: PlannedSend) -> CapCheck | None:
        """What the customer's frequency cap needs to judge this send; None when the
        plan does not cap its category."""
        if self._plan is None:
            return None
        plan = plan_for(self._plan.plan, self._state.overrides)
        caps = caps_for(plan, send.category)
        if not caps or not workflow.patched(FREQUENCY_CAP_PATCH):
            return None
        if send.step is not None:
            explicit, window = send.step.priority, send.step.window
            # The scheduler's stale rule: no later than stale_after past the trigger;
            # without one, the send budget every non-transactional message has.
            stale_at: datetime | None = send.base_at + (
                send.step.stale_after or DEFAULT_SEND_BUDGET
            )
        else:  # a replenishment reminder: pointless once the item has run out
            explicit = plan.replenishment.priority if plan.replenishment else None
            window, stale_at = None, send.run_out_at
        return CapCheck(
            caps=caps,
            priority=priority_of(send.category, explicit),
            timezone=self._current_order().customer.timezone,
            quiet_hours=plan.quiet_hours,
            window=window,
            stale_at=stale_at,
        )

    def _over_cap(self, send: PlannedSend, answer: SentMessage) -> None:
        """Deferred: wait (a durable timer) for the slot the cap holds for this send,
        then ask again. Stale: drop it and say why (the ledger says so too)."""
        state = self._state
        label = f"{send.key} #{send.iteration}" if send.iteration else send.key
        if answer.status == Delivery.DEFERRED:
            # The activity always says when; a day is only a guard against a loop.
            slot = answer.not_before or workflow.now() + timedelta(days=1)
            state.deferred[send.key] = slot
            local = local_iso(slot, self._current_order().customer.timezone)
            self._note("note", f"{label}: {answer.detail}; deferred to {local}")
            return
        state.sent.append(dataclasses.replace(answer, sent_at=workflow.now()))
        detail = f"stale: {answer.detail}"
        if send.key.startswith(REPLENISHMENT_PREFIX):
            # This cycle's reminder is dropped; the series goes on with the next one.
            state.deferred.pop(send.key, None)
            state.reminders_sent[send.focus_sku] = send.iteration
            self._note("skip", f"{label}: {detail}")
            return
        self._resolve(send, StepOutcome.SKIPPED, detail)

    # -- pauses ------------------------------------------------------------------
    # A held send is deferred like one the frequency cap deferred (state.deferred), so
    # the journey's timers and the agenda work as ever; state.held says why, for the
    # query, the UI and the signals that release it.

    def _pause_journey(self, level: JourneyPause) -> None:
        state = self._state
        if state.journey_pause == level:
            return
        state.journey_pause = level
        if level == JourneyPause.NON_TRANSACTIONAL:
            # Lowered from all sends: the transactional ones it held are due again.
            self._release_holds(lambda held: held.by_journey and held.transactional)
        what = "all its sends" if level == JourneyPause.ALL else "its non-transactional sends"
        self._note("note", f"journey paused by an operator: {what} are held")
        self._sync_paused()
        self._controls_changed = True

    def _release_holds(self, which: Callable[[HeldSend], bool]) -> list[str]:
        """Forget the holds ``which`` selects, so their sends are due again now; their keys."""
        state = self._state
        released = [key for key, held in state.held.items() if which(held)]
        for key in released:
            del state.held[key]
            state.deferred.pop(key, None)
        return released

    def _held_by_journey(self, send: PlannedSend) -> bool:
        """Whether the journey's own pause holds ``send`` (held, or dropped once past
        its stale limit: no activity is asked, so only the journey records that)."""
        level = self._state.journey_pause
        if level is None:
            return False
        if level == JourneyPause.NON_TRANSACTIONAL and send.category == Category.TRANSACTIONAL:
            return False
        stale_at = self._stale_at(send)
        if stale_at is not None and workflow.now() >= stale_at:
            dropped = SentMessage(
                step=send.step_id,
                channel=None,
                template=send.template,
                sent_at=workflow.now(),
                message_id="",
                status=Delivery.STALE,
                detail="held by the journey's own pause until past its stale limit",
            )
            self._unhold(send.key)
            self._over_cap(send, dropped)
            return True
        self._hold(send, "the journey is paused", by_journey=True)
        return True

    def _hold(self, send: PlannedSend, reason: str, *, by_journey: bool) -> None:
        """Defer ``send`` until it is asked again (at its stale limit at the latest),
        and say why; noted on the timeline when it is first held, or held anew."""
        state = self._state
        now = workflow.now()
        before = state.held.get(send.key)
        since = before.since if before is not None else now
        state.held[send.key] = HeldSend(
            since=since,
            reason=reason,
            by_journey=by_journey,
            transactional=send.category == Category.TRANSACTIONAL,
        )
        stale_at = self._stale_at(send)
        again = now + (JOURNEY_PAUSE_RECHECK if by_journey else pause_recheck(now - since))
        if stale_at is not None:
            again = min(again, stale_at)
        state.deferred[send.key] = max(again, now + timedelta(seconds=1))
        if before is None or before.reason != reason:
            tz = self._current_order().customer.timezone
            until = (
                f"; dropped if still held at {local_iso(stale_at, tz)}"
                if stale_at is not None
                else ""
            )
            self._note("note", f"{_label(send)}: held, {reason}{until}")
        self._sync_paused()

    def _unhold(self, key: str) -> None:
        """The send was answered otherwise than paused: no pause holds it any more
        (nor, once "sending_resumed" released it, is JourneyPaused left standing)."""
        self._state.held.pop(key, None)
        self._sync_paused()

    def _forget_moot_holds(self, agenda: Agenda) -> None:
        """Holds of sends no longer on the agenda (an event ended their step)."""
        state = self._state
        if not state.held:
            return
        planned = {send.key for send in agenda.sends}
        for key in [key for key in state.held if key not in planned]:
            del state.held[key]
            state.deferred.pop(key, None)
        self._sync_paused()

    def _sync_paused(self) -> None:
        """Keep JourneyPaused (and the details the UI shows) in step with the holds."""
        state = self._state
        paused = bool(state.held) or state.journey_pause is not None
        if paused == state.paused or not workflow.patched(PAUSABLE_SENDS_PATCH):
            return
        state.paused = paused
        workflow.upsert_search_attributes([sa.JOURNEY_PAUSED.value_set(paused)])
        self._show_details()

    def _stale_at(self, send: PlannedSend) -> datetime | None:
        """When the message is no longer worth sending, so a pause drops rather than
        holds it: its step's stale_after past the trigger (the scheduler's rule), or
        without one the send budget from when it was first held; a replenishment
        reminder once the item has run out; never for transactional messages."""
        if send.category == Category.TRANSACTIONAL:
            return None
        if send.step is None:
            return send.run_out_at
        if send.step.stale_after is not None:
            return send.base_at + send.step.stale_after
        held = self._state.held.get(send.key)
        return (held.since if held is not None else workflow.now()) + DEFAULT_SEND_BUDGET

    def _resolve(self, send: PlannedSend, outcome: StepOutcome, detail: str) -> None:
        state = self._state
        now = workflow.now()
        state.deferred.pop(send.key, None)
        if send.key.startswith(REPLENISHMENT_PREFIX) and outcome == StepOutcome.SENT:
            # A series goes on: count the reminder, keep the key open.
            state.reminders_sent[send.focus_sku] = send.iteration
            self._reminders_this_run += 1
            label = f"{send.key} #{send.iteration}"
        else:
            state.steps[send.key] = StepRecord(outcome, now, detail)
            label = send.key
        state.last_activity_at = now
        kind = {StepOutcome.SENT: "message", StepOutcome.FAILED: "failure"}.get(outcome, "skip")
        self._note(kind, f"{label}: {detail}")

    def _support_ticket_input(self) -> SupportTicketInput:
        feedback = self._state.feedback
        return SupportTicketInput(
            journey_id=self._state.journey_id,
            order_id=self._order.order_id,
            customer_id=self._order.customer.id,
            score=feedback.score if feedback else -1,
            comment=feedback.comment if feedback else "",
        )

    async def _open_support_ticket_inline(self) -> None:
        """As journeys on the sequential loop did: awaited, retried without end."""
        result = await workflow.execute_activity(
            OPEN_SUPPORT_TICKET_ACTIVITY,
            self._support_ticket_input(),
            result_type=SupportTicketResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
            summary="open support ticket",
        )
        self._note("note", f"support ticket {result.status} {result.reference}".strip())

    async def _open_support_ticket(self) -> None:
        """Tell the desk about an unhappy customer, beside the journey: a refusal or an
        outage longer than SUPPORT_DESK_BUDGET is recorded on the timeline, never
        raised, so the desk can neither fail nor hold up the journey."""
        try:
            result = await workflow.execute_activity(
                OPEN_SUPPORT_TICKET_ACTIVITY,
                self._support_ticket_input(),
                result_type=SupportTicketResult,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=SUPPORT_DESK_BUDGET,
                retry_policy=SUPPORT_DESK_RETRY,
                summary="open support ticket",
            )
        except ActivityError as err:
            _reraise_cancellation(err)
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "SupportDeskRefused":
                self._note("failure", f"support ticket not opened: {cause.message}")
            else:
                self._note(
                    "failure",
                    "support ticket not opened: the desk could not be reached for "
                    f"{_days(SUPPORT_DESK_BUDGET)} ({cause or err})",
                )
            return
        self._note("note", f"support ticket {result.status} {result.reference}".strip())

    async def _supersede_older_reminders(self) -> None:
        skus = sorted({item.sku for item in self._order.items if item.consumption_days > 0})
        if not skus or not self._customer_has_other_journeys:
            return  # nothing reordered, or the customer's first journey: nobody to tell
        try:
            result = await workflow.execute_activity(
                SUPERSEDE_REPLENISHMENT_ACTIVITY,
                SupersedeInput(self._state.journey_id, self._order.customer.id, skus),
                result_type=SupersedeResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=LOOKUP_RETRY,
                summary="stop older reminders for these SKUs",
            )
        except ActivityError as err:
            _reraise_cancellation(err)
            # Best effort: the older journey would only send one reminder too many.
            self._note("note", f"could not reach older journeys: {err.cause or err}")
            return
        if result.notified_journeys:
            self._note("note", f"reminders stopped in {', '.join(result.notified_journeys)}")

    # -- ending ----------------------------------------------------------------

    def _end_time(self, agenda: Agenda, pinned: PinnedPlan) -> datetime | None:
        """When the journey may end if nothing else happens; None while sends are due."""
        if agenda.sends:
            return None
        state = self._state
        if EventType.CANCELLED in state.events:
            return workflow.now()
        settled = EventType.DELIVERED in state.events or any(
            event in state.events for event in RETURN_EVENTS
        )
        if settled:
            return (state.last_activity_at or state.started_at) + pinned.plan.linger
        return state.started_at + pinned.plan.expire_after

    def _finish(self) -> JourneyState:
        if self._state.stage not in {Stage.ORDER_CANCELLED}:
            self._set_stage(Stage.COMPLETED)
        self._state.scheduled = []
        self._state.waiting_for = []
        self._state.next_step = "Nothing: the journey has ended"
        self._note("note", "journey ended")
        self._show_details()
        sent = sum(1 for m in self._state.sent if m.status == "sent")
        self._note_event("journey.ended", {"stage": self._state.stage, "messages_sent": str(sent)})
        return self._state

    def _should_continue_as_new(self) -> bool:
        # Each replenishment cycle starts a fresh run so a journey that lasts a
        # year keeps a short history; Temporal may also ask for it.
        if workflow.info().is_continue_as_new_suggested():
            return True
        return self._state.stage == Stage.REPLENISHMENT and self._reminders_this_run > 0

    # -- what people see -----------------------------------------------------

    def _publish(self, agenda: Agenda, now: datetime) -> None:
        state = self._state
        self._set_stage(stage_for(state, agenda))
        tz = self._current_order().customer.timezone
        state.scheduled = [
            ScheduledStep(
                step=send.key if not send.iteration else f"{send.key} #{send.iteration}",
                template=send.template,
                category=send.category.value,
                channels=list(send.channels),
                due_at=send.due_at,
                due_local=local_iso(send.due_at, tz),
                held=state.held[send.key].reason if send.key in state.held else "",
            )
            for send in agenda.sends
        ]
        state.waiting_for = [*agenda.waiting_for]
        if EventType.CANCELLED not in state.events and EventType.CANCELLED not in state.waiting_for:
            state.waiting_for.append(EventType.CANCELLED)
        if state.scheduled:
            first = state.scheduled[0]
            when = "now" if first.due_at <= now else f"at {first.due_local} ({tz})"
            state.next_step = f"{first.step} {when}"
            if first.held:
                state.next_step = f"{first.step} held ({first.held}); asked again {when}"
        elif agenda.waiting_for:
            state.next_step = "Waiting for " + ", ".join(agenda.waiting_for)
        else:
            state.next_step = "Waiting for late events before the journey ends"
        self._show_details()

    def _show_details(self) -> None:
        state = self._state
        plan = f"{state.plan_id} v{state.plan_version}" if state.plan_id else "choosing"
        upcoming = "\n".join(
            f"- {s.step}: {s.due_local} ({', '.join(s.channels)})" for s in state.scheduled[:5]
        )
        paused = _pause_summary(state)
        workflow.set_current_details(
            (f"**Paused:** {paused}\n\n" if paused else "")
            + f"**Stage:** {state.stage} · **Plan:** {plan}\n\n"
            f"**Next:** {state.next_step}\n\n"
            + (f"**Scheduled:**\n{upcoming}\n\n" if upcoming else "")
            + f"**Messages sent:** {sum(1 for m in state.sent if m.status == 'sent')}"
            + (
                "\n\n**Experiments:** "
                + ", ".join(f"{name}: {arm}" for name, arm in state.experiments.items())
                if state.experiments
                else ""
            )
        )

    def _set_stage(self, stage: Stage) -> None:
        if stage == self._state.stage:
            return
        previous, self._state.stage = self._state.stage, stage
        self._note("stage", f"stage {stage}")
        workflow.upsert_search_attributes([sa.JOURNEY_STAGE.value_set(stage.value)])
        self._note_event("stage.changed", {"from": previous, "to": stage})

    def _note_event(self, event_type: str, data: dict[str, str]) -> None:
        """Keep an event for outbound subscribers until ``_report_events``."""
        if not self._reports_events:
            return
        state = self._state
        state.event_notes += 1
        state.unreported.append(
            JourneyEventNote(
                number=state.event_notes,
                type=event_type,
                occurred_at=workflow.now(),
                data={key: str(value) for key, value in data.items()},
            )
        )
        if len(state.unreported) > MAX_UNREPORTED:
            dropped = len(state.unreported) - MAX_UNREPORTED
            del state.unreported[:dropped]
            self._note("failure", f"{dropped} journey event(s) dropped, never reported")

    async def _report_events(self) -> None:
        """Hand the noted events to the outbox. A failure (the database down for the
        whole retry budget) keeps them for the next report instead of failing the
        journey: subscribers hear later, the customer is unaffected."""
        state = self._state
        if not state.unreported:
            return
        notes = list(state.unreported)
        try:
            await workflow.execute_local_activity(
                REPORT_JOURNEY_EVENTS_ACTIVITY,
                ReportJourneyEventsInput(
                    journey_id=state.journey_id,
                    order_id=state.order_id,
                    customer_id=state.customer_id,
                    plan=f"{state.plan_id}@v{state.plan_version}" if state.plan_id else "",
                    notes=notes,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=LOOKUP_RETRY,
                summary="report journey events",
            )
        except ActivityError as err:
            _reraise_cancellation(err)
            self._note("failure", f"journey events not reported yet: {err.cause or err}")
            return
        reported = {note.number for note in notes}
        state.unreported = [note for note in state.unreported if note.number not in reported]

    def _note(self, kind: str, detail: str) -> None:
        timeline = self._state.timeline
        timeline.append(TimelineEntry(at=workflow.now(), kind=kind, detail=detail))
        if len(timeline) > MAX_TIMELINE:
            del timeline[: len(timeline) - MAX_TIMELINE]

    # -- helpers -------------------------------------------------------------

    def _current_order(self) -> Order:
        order = self._order
        address = self._state.shipping_address
        if address is not None:
            order = dataclasses.replace(order, shipping_address=address)
        overrides = self._state.overrides
        if overrides is not None and (overrides.timezone or overrides.locale):
            # The customer's own zone and language win over what the order carried.
            customer = dataclasses.replace(
                order.customer,
                timezone=overrides.timezone or order.customer.timezone,
                locale=overrides.locale or order.customer.locale,
            )
            order = dataclasses.replace(order, customer=customer)
        return order

    def _skus_for(self, send: PlannedSend) -> list[str]:
        if send.template in {"return_confirmation", "refund_confirmation"}:
            return list(self._state.returned_skus)
        return [send.focus_sku] if send.focus_sku else []


def _pause_summary(state: JourneyState) -> str:
    """What pauses hold, for the UI's current details ("" when nothing is paused)."""
    parts = []
    if state.journey_pause == JourneyPause.ALL:
        parts.append("the journey is paused (all its sends)")
    elif state.journey_pause == JourneyPause.NON_TRANSACTIONAL:
        parts.append("the journey is paused (its non-transactional sends)")
    parts += [f"{key} {held.reason}" for key, held in state.held.items() if not held.by_journey]
    return "; ".join(parts)


def _label(send: PlannedSend) -> str:
    return f"{send.key} #{send.iteration}" if send.iteration else send.key


def pause_recheck(held_for: timedelta) -> timedelta:
    """When a send a scope pause has held for ``held_for`` is asked again: after as
    long again, from PAUSE_RECHECK_FIRST up to PAUSE_RECHECK_LONGEST."""
    return min(max(held_for, PAUSE_RECHECK_FIRST), PAUSE_RECHECK_LONGEST)


def _flight_key(send: PlannedSend) -> tuple[str, int]:
    return send.key, send.iteration


def _step_label(send: PlannedSend) -> str:
    """The step as a metric label: a replenishment reminder's names its SKU, which
    is no plan vocabulary, so all of them are "replenishment"."""
    return send.step_id if send.step is not None else REPLENISHMENT_PREFIX.rstrip(":")


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    return f"{days:g} day{'s' if days != 1 else ''}"


def _reraise_cancellation(err: ActivityError) -> None:
    """An activity cancelled because the journey was cancelled is not a failed
    step to note and move past: the cancellation must reach ``run``, or the journey
    would carry on as if nobody had asked it to stop. Histories without the
    ``cancel-during-activity`` marker swallowed such a cancel, and replay as they ran."""
    if is_cancelled_exception(err) and workflow.patched("cancel-during-activity"):
        raise err
