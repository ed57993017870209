"""The ``send_message`` activity: one message, one channel, delivered at most once.

Every attempt first claims the message's row in the ledger; a row already final
(sent, bounced, skipped) answers the retry without sending again. A permanent
refusal suppresses the address and tells the journey to try its next channel.

Consent is checked at the moment of sending, not when the journey planned the
message: a marketing message scheduled last week is not sent to a customer who
opted out yesterday.

So is the customer's frequency cap (``request.cap``), last, just before delivery:
the slot is reserved in the same transaction that checks it, released if the
provider refuses the address, and kept by a retry. Over the cap the answer is
DEFERRED (with the instant it fits; the ledger row stays open for that later
attempt) or, past the message's stale limit, STALE (the ledger row says so).

An operator's pause (``engine.messaging.pauses``) is asked before all of these,
before anything is claimed: a message it holds is answered PAUSED (the journey asks
again later), or, once past its stale limit, STALE, the drop recorded in the
ledger. A retry of a send an earlier attempt began is not held: a pause stops what
has not started.

An attempt can outlive its start-to-close timeout (a slow provider, a full
connection pool), and Temporal then starts the next attempt while the first still
runs. So each attempt claims the row as its owner with a lease shorter than the
timeout, renews it (and heartbeats) while it works, and bounds the whole delivery
by one deadline inside the timeout; an attempt that finds another's live lease
waits for it instead of sending. The residual risk is a provider that took the
message in the last moment before the deadline, or a worker that died between the
provider's acceptance and the record (for texts, Twilio's delivery report records
the acceptance: see ``engine.messaging.delivery_reports``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels.base import (
    ChannelUnavailableError,
    DeliveryChannel,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from activities.handover import Handover
from activities.send_metrics import count, counted, duplicate_avoided, unavailable_reason
from engine.messaging.experiment_decisions import ExperimentDecisions
from engine.messaging.frequency_caps import CapOutcome, FrequencyCapStore, send_key
from engine.messaging.ledger import Claim, LedgerEntry, MessageLedger
from engine.messaging.pauses import Pause, PauseRegistry
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.tables import MessageStatus
from engine.platform.redaction import redact
from engine.platform.telemetry.catalogue import DuplicateReason, Outcome, Reason
from workflows.contracts import SEND_MESSAGE_ACTIVITY, Delivery, SendMessageInput, SentMessage
from workflows.plans.model import ALWAYS_ALLOWED_CATEGORIES, HOLDOUT_VARIANT
from workflows.vocabulary import DELIVERY_REPORTING_CHANNELS, Channel

TRANSIENT_FAILURE = "TransientDeliveryFailure"
# Another attempt of the same message holds a live lease: this one waits for it.
DELIVERY_IN_PROGRESS = "DeliveryInProgress"
# A claim's lease: well inside an attempt's start-to-close timeout (30 s), renewed
# while the attempt works, so a worker that dies frees the row within this long.
CLAIM_LEASE = timedelta(seconds=20)
LEASE_RENEWAL = timedelta(seconds=5)
# Of an attempt's start-to-close timeout, what is kept back for recording the
# outcome after the provider answered (the record retries a dropped connection).
RECORD_RESERVE = timedelta(seconds=10)
DEFAULT_ATTEMPT_TIMEOUT = timedelta(seconds=30)
# A text the provider may have taken before an attempt lost track of it (no answer
# came): the row stays held this long, so a late delivery report can settle it before
# a retry would send it again.
REPORT_GRACE = timedelta(minutes=5)
_CANCELLED = "cancelled: the journey no longer needed it"
# Ledger reasons are kept with the outcome they explain.
_UNAVAILABLE = "unavailable: "
_STALE = "stale: "
_HOLDOUT = "holdout: "


class ConsentCheck(Protocol):
    """The customer's consent as recorded now (``engine.customers.consent.ConsentLedger``)."""

    async def allows(self, customer_id: str, channel: str, category: str) -> bool: ...


class MessageActivities:
    def __init__(
        self,
        ledger: MessageLedger,
        suppressions: SuppressionList,
        consent: ConsentCheck,
        channels: Mapping[Channel, DeliveryChannel],
        caps: FrequencyCapStore | None = None,
        *,
        report_grace: timedelta = REPORT_GRACE,
        pauses: PauseRegistry | None = None,
        decisions: ExperimentDecisions | None = None,
    ) -> None:
        self._ledger = ledger
        # None: no experiment can be stopped (tools that send single messages).
        self._decisions = decisions
        # None: nothing can pause sending (tools that send single messages).
        self._pauses = pauses
        self._report_grace = report_grace
        self._suppressions = suppressions
        self._consent = consent
        self._channels = channels
        # None: no cap is enforced (tools that send single messages).
        self._caps = caps

    @activity.defn(name=SEND_MESSAGE_ACTIVITY)
    async def send_message(self, request: SendMessageInput) -> SentMessage:
        request = await self._decided(request)
        channel = self._channels.get(request.channel)
        address = channel.address_of(request) if channel else ""
        claim = claim_for(request, address)
        attempt = Attempt.current()
        pause = await self._pause_holding(request, claim.key)
        if pause is not None:
            return await self._paused(request, claim, attempt, pause)
        entry = await self._ledger.claim(
            claim, owner=attempt.owner, lease=CLAIM_LEASE, now=datetime.now(UTC)
        )
        if entry.is_final:
            # An earlier attempt already settled this message: answer with what was
            # recorded instead of sending it again.
            caps = self._caps_for(request)
            if caps is not None and entry.status == MessageStatus.SENT and entry.sent_at:
                # That attempt may have died before counting it (the provider's
                # delivery report recorded the send): the slot it reserved is taken.
                await caps.confirm(_slot_key(request), entry.sent_at)
            duplicate_avoided(request, DuplicateReason.ALREADY_SETTLED)
            return _outcome(entry, request)
        if not entry.held_by(attempt.owner):
            duplicate_avoided(request, DuplicateReason.LEASE_HELD)
            raise _wait_for(entry)
        try:
            async with self._leased(claim.key, attempt.owner) as lease:
                return await self._send_claimed(
                    request, channel, address, claim.key, attempt, lease
                )
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.cancel_requested:
                # The journey asked (the step became moot) before the provider had it.
                await self._ledger.mark_skipped(claim.key, _CANCELLED)
                await self._release_slot(request)
                count(request, Outcome.SKIPPED, Reason.CANCELLED)
            raise

    async def _send_claimed(
        self,
        request: SendMessageInput,
        channel: DeliveryChannel | None,
        address: str,
        key: str,
        attempt: Attempt,
        lease: Lease,
    ) -> SentMessage:
        reason = self._unavailable(request, channel, address)
        code = unavailable_reason(request, channel, address)
        if not reason and await self._suppressions.is_suppressed(request.channel, address):
            reason = "address suppressed after an earlier permanent failure"
            code = Reason.SUPPRESSED
        if not reason:
            reason, code = await self._consent_refusal(request), Reason.NO_CONSENT
        if reason:
            await self._ledger.mark_skipped(key, _UNAVAILABLE + reason)
            await self._release_slot(request)  # held or reserved by an earlier attempt
            return counted(request, _result(request, Delivery.UNAVAILABLE, detail=reason), code)
        arm = request.experiment
        if arm is not None and arm.holdout:
            # After consent and the rest: the holdout is compared with customers the
            # message could have reached. Its row records the exposure.
            detail = f"holdout of experiment {arm.experiment}"
            await self._ledger.mark_skipped(key, _HOLDOUT + detail)
            await self._release_slot(request)
            return counted(request, _result(request, Delivery.HOLDOUT, detail=detail), Reason.NONE)
        capped = await self._over_cap(request, key)
        if capped is not None:
            return capped
        assert channel is not None
        handover = Handover(start_by=attempt.deliver_by)
        delivery = asyncio.create_task(
            self._deliver(request, channel, address, key, handover, lease)
        )
        try:
            return await asyncio.shield(delivery)
        except asyncio.CancelledError:
            # Cancelled: the step became moot, the attempt timed out, the worker is
            # stopping. Before the handover began nothing went out: stop. After, the
            # provider may have the message: let the delivery end and be recorded, so
            # the ledger and a journey waiting for the answer tell the truth.
            if not handover.begun:
                delivery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivery
                if not handover.begun:
                    raise
            result = await delivery
            details = activity.cancellation_details()
            if details is not None and details.cancel_requested:
                return result
            raise

    async def _deliver(
        self,
        request: SendMessageInput,
        channel: DeliveryChannel,
        address: str,
        key: str,
        handover: Handover,
        lease: Lease,
    ) -> SentMessage:
        try:
            provider_id = await channel.deliver(request, address, key, handover)
        except ChannelUnavailableError as err:
            # Not the address's fault: nothing is suppressed; the next channel goes.
            reason = redact(str(err))
            await self._ledger.mark_skipped(key, _UNAVAILABLE + reason)
            await self._release_slot(request)
            return counted(
                request,
                _result(request, Delivery.UNAVAILABLE, detail=reason),
                Reason.CHANNEL_UNAVAILABLE,
            )
        except PermanentDeliveryError as err:
            # Redacted again here, whatever the channel: this text is stored next
            # to the address, and shown in the journey and Temporal's UI.
            reason = redact(str(err))
            await self._suppressions.add(request.channel, address, reason)
            await self._ledger.mark_failed(key, reason)
            await self._release_slot(request)  # the next channel may take it
            return counted(
                request,
                _result(request, Delivery.BOUNCED, detail=reason),
                Reason.PROVIDER_REFUSED,
            )
        except TransientDeliveryError as err:
            # The row stays claimed: the retry (same key) sends it.
            delay = timedelta(seconds=err.retry_after_seconds or 0)
            if err.maybe_delivered and request.channel in DELIVERY_REPORTING_CHANNELS:
                # Held while a late delivery report may still settle it. An email or
                # a push has no such report: holding it would only delay the retry.
                await lease.hold(self._report_grace)
                delay = max(delay, self._report_grace)
            count(
                request,
                Outcome.FAILED,
                Reason.PROVIDER_NO_ANSWER if err.maybe_delivered else Reason.PROVIDER_ERROR,
            )
            raise ApplicationError(
                redact(str(err)), type=TRANSIENT_FAILURE, next_retry_delay=delay or None
            ) from err
        sent_at = datetime.now(UTC)
        await self._ledger.mark_sent(key, provider_message_id=provider_id, sent_at=sent_at)
        caps = self._caps_for(request)
        if caps is not None:
            await caps.confirm(_slot_key(request), sent_at)
        activity.logger.info(
            "message sent", extra={"step": request.step, "channel": request.channel}
        )
        return counted(
            request,
            _result(request, Delivery.SENT, message_id=provider_id, at=sent_at),
            Reason.NONE,
        )

    @contextlib.asynccontextmanager
    async def _leased(self, key: str, owner: str) -> AsyncIterator[Lease]:
        """Keep ``owner``'s lease on the row (and tell Temporal the attempt lives) while
        the attempt works; end it when the attempt stops, settled or not, so a retry
        need not wait for it to run out, unless the attempt holds it on."""
        lease = Lease(self._ledger, key, owner)

        async def renew() -> None:
            while True:
                await asyncio.sleep(LEASE_RENEWAL.total_seconds())
                activity.heartbeat()
                if not await self._ledger.renew(key, owner, datetime.now(UTC) + CLAIM_LEASE):
                    return  # settled, or (after a stall past the lease) another's now

        renewal = asyncio.create_task(renew())
        try:
            yield lease
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            if not lease.held:
                await self._ledger.release(key, owner)

    async def _pause_holding(self, request: SendMessageInput, key: str) -> Pause | None:
        """The operator's pause holding this message now, if any (asked before
        anything is claimed, so a held message leaves no trace but the answer)."""
        if self._pauses is None:
            return None
        pause = await self._pauses.matching(
            request.plan_id, request.step, request.category, request.template
        )
        if pause is None:
            return None
        if activity.info().attempt > 1 and await self._ledger.get(key) is not None:
            # A retry of a send an earlier attempt began (it claimed the row, and may
            # have handed the message to the provider): a pause stops what has not
            # started; this attempt finishes, and records, what has.
            return None
        return pause

    async def _paused(
        self, request: SendMessageInput, claim: Claim, attempt: Attempt, pause: Pause
    ) -> SentMessage:
        """PAUSED while the message can still wait; past its stale limit it is
        dropped, and the ledger says why (as the frequency cap's stale path does)."""
        held = f"paused by {pause.describe()}"
        stale_at = request.stale_at
        if stale_at is None or _cap_clock() < stale_at:
            activity.logger.info(
                "message held by a pause", extra={"step": request.step, "pause": pause.id}
            )
            return counted(
                request, _result(request, Delivery.PAUSED, detail=held), Reason.OPERATOR_PAUSE
            )
        entry = await self._ledger.claim(
            claim, owner=attempt.owner, lease=CLAIM_LEASE, now=datetime.now(UTC)
        )
        if entry.is_final:
            return _outcome(entry, request)
        if not entry.held_by(attempt.owner):
            raise _wait_for(entry)
        detail = f"{held} until past its stale limit ({stale_at.isoformat(timespec='minutes')})"
        await self._ledger.mark_skipped(claim.key, _STALE + detail)
        await self._release_slot(request)  # one an earlier deferral held
        return counted(
            request, _result(request, Delivery.STALE, detail=detail), Reason.OPERATOR_PAUSE
        )

    async def _decided(self, request: SendMessageInput) -> SendMessageInput:
        """The request as a stopped experiment leaves it: the winner's template and
        subject (a winner ``holdout``: no message), whatever arm the customer was in."""
        arm = request.experiment
        if arm is None or self._decisions is None:
            return request
        winner = await self._decisions.winner(arm.experiment)
        if winner is None or winner == arm.variant:
            return request
        decided = dataclasses.replace(arm, variant=winner)
        if winner == HOLDOUT_VARIANT:
            return dataclasses.replace(request, experiment=decided)
        content = arm.content(winner)
        if content is None:  # a winner this journey's plan does not know: as assigned
            return request
        return dataclasses.replace(
            request,
            template=content.template,
            subject=content.subject_for(request.order.customer.locale),
            experiment=decided,
        )

    def _caps_for(self, request: SendMessageInput) -> FrequencyCapStore | None:
        """The cap store when this message counts against the customer's caps."""
        check = request.cap
        if check is None or not check.caps:
            return None
        # Whatever a request says, these answer the order or the customer.
        if request.category in ALWAYS_ALLOWED_CATEGORIES:
            return None
        return self._caps

    async def _over_cap(self, request: SendMessageInput, key: str) -> SentMessage | None:
        """None when the message may go now (its slot is reserved); otherwise the
        DEFERRED or STALE answer (checked on every attempt: a retry reuses its slot)."""
        caps = self._caps_for(request)
        if caps is None or request.cap is None:
            return None
        decision = await caps.reserve(
            customer_id=request.order.customer.id,
            category=request.category,
            key=_slot_key(request),
            check=request.cap,
            now=_cap_clock(),
        )
        if decision.outcome == CapOutcome.GRANTED:
            return None
        if decision.outcome == CapOutcome.DEFERRED:
            # The ledger row stays claimed: the step's next attempt continues it.
            deferred = _result(
                request,
                Delivery.DEFERRED,
                detail=decision.reason,
                not_before=decision.at,
            )
            return counted(request, deferred, Reason.FREQUENCY_CAP)
        detail = f"{decision.reason} until {decision.at.isoformat(timespec='minutes')}"
        await self._ledger.mark_skipped(key, _STALE + detail)
        return counted(
            request, _result(request, Delivery.STALE, detail=detail), Reason.FREQUENCY_CAP
        )

    async def _release_slot(self, request: SendMessageInput) -> None:
        caps = self._caps_for(request)
        if caps is not None:
            await caps.release(_slot_key(request))

    async def _consent_refusal(self, request: SendMessageInput) -> str:
        """Why consent forbids this message now, or "" (checked at send time, every attempt)."""
        category = request.category
        if category in ALWAYS_ALLOWED_CATEGORIES:
            return ""
        if await self._consent.allows(request.order.customer.id, request.channel, category):
            return ""
        # The journey then tries the step's next channel, which is refused the
        # same way unless the customer allowed that channel.
        return f"no consent: customer opted out of {category}"

    @staticmethod
    def _unavailable(
        request: SendMessageInput, channel: DeliveryChannel | None, address: str
    ) -> str:
        if channel is None:
            return f"no {request.channel} channel in this deployment"
        return channel.unavailable_reason(request) or (
            "" if address else f"no {request.channel} address"
        )


@dataclass(frozen=True)
class Attempt:
    """This attempt of the activity: who it is, and by when its message must be on its
    way (an attempt must not outlive its start-to-close timeout waiting for a provider)."""

    owner: str
    deliver_by: float  # event-loop time

    @classmethod
    def current(cls) -> Attempt:
        info = activity.info()
        timeout = info.start_to_close_timeout or DEFAULT_ATTEMPT_TIMEOUT
        reserve = min(RECORD_RESERVE, timeout / 3)
        budget = (timeout - reserve).total_seconds()
        return cls(
            owner=f"{info.workflow_run_id}/{info.activity_id}/{info.attempt}",
            deliver_by=asyncio.get_running_loop().time() + budget,
        )


@dataclass
class Lease:
    """An attempt's lease on its row, which it may hold on after it stops."""

    ledger: MessageLedger
    key: str
    owner: str
    held: bool = False

    async def hold(self, span: timedelta) -> None:
        """Keep the row for ``span`` past this attempt (other attempts wait)."""
        self.held = await self.ledger.renew(self.key, self.owner, datetime.now(UTC) + span)


def _wait_for(entry: LedgerEntry) -> ApplicationError:
    """Retry once the other attempt's lease has run out (or it settled the row)."""
    now = datetime.now(UTC)
    remaining = (entry.lease_until - now) if entry.lease_until else CLAIM_LEASE
    delay = max(remaining, timedelta(0)) + timedelta(seconds=1)
    return ApplicationError(
        "another attempt of this message is still under way; waiting for it",
        type=DELIVERY_IN_PROGRESS,
        next_retry_delay=delay,
    )


def _result(
    request: SendMessageInput,
    status: Delivery,
    *,
    detail: str = "",
    message_id: str = "",
    at: datetime | None = None,
    not_before: datetime | None = None,
) -> SentMessage:
    return SentMessage(
        step=request.step,
        channel=request.channel,
        template=request.template,
        sent_at=at or datetime.now(UTC),
        message_id=message_id,
        status=status,
        detail=detail,
        not_before=not_before,
    )


def _cap_clock() -> datetime:
    """Now, for the cap: the later of the wall clock and the server's time for this
    attempt. They agree in production; when journeys run in virtual time (tests,
    ``aftercare simulate``) the server's is the journeys' own, which slots must use."""
    scheduled = activity.info().current_attempt_scheduled_time
    return max(datetime.now(UTC), scheduled.astimezone(UTC))


def claim_for(request: SendMessageInput, address: str) -> Claim:
    """The ledger row every attempt at ``request`` claims, sent to ``address``."""
    arm = request.experiment
    return Claim(
        journey_id=request.journey_id,
        step=request.step,
        iteration=request.iteration,
        channel=request.channel,
        template=request.template,
        recipient=address,
        plan=f"{request.plan_id}@v{request.plan_version}" if request.plan_id else None,
        category=request.category or None,
        customer_id=request.order.customer.id or None,
        experiment=arm.experiment if arm is not None else None,
        variant=arm.variant if arm is not None else None,
    )


def _slot_key(request: SendMessageInput) -> str:
    return send_key(request.journey_id, request.step, request.iteration)


def _outcome(entry: LedgerEntry, request: SendMessageInput) -> SentMessage:
    if entry.status == MessageStatus.SENT:
        return _result(
            request,
            Delivery.SENT,
            message_id=entry.provider_message_id or "",
            at=entry.sent_at,
        )
    if entry.status == MessageStatus.SKIPPED and (entry.error or "").startswith(_HOLDOUT):
        return _result(request, Delivery.HOLDOUT, detail=(entry.error or "").removeprefix(_HOLDOUT))
    if entry.status == MessageStatus.SKIPPED and (entry.error or "").startswith(_STALE):
        return _result(request, Delivery.STALE, detail=(entry.error or "").removeprefix(_STALE))
    if entry.status == MessageStatus.SKIPPED:
        return _result(
            request, Delivery.UNAVAILABLE, detail=(entry.error or "").removeprefix(_UNAVAILABLE)
        )
    return _result(request, Delivery.BOUNCED, detail=entry.error or "")
