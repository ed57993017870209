"""The NPS / CSAT landing page: ``GET /f/{token}?score=N`` asks, ``POST`` answers.

Feedback emails link each score (0-10) to this page. The GET only shows the
score the customer picked, with a comment box: mail scanners open every link in
a message, and a scanner must not answer for the customer. The POST records the
answer (``engine.customers.feedback_responses``) and delivers it to the order's
journey as a ``feedback`` event, which starts the follow-up for the score.

One answer per link. The event id is derived from the token, so two submits
racing each other are still one event in the journey; once the answer is
stored, the link answers 410 and changes nothing. The journey is told first and
the answer stored after: if Temporal cannot be reached the customer is asked to
try again and nothing is kept, so the retry is not refused. An answer for a
journey that has ended is kept and thanked for like any other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from temporalio.service import RPCError

from engine.customers.consent import CustomerErased, token_hash
from engine.customers.feedback_responses import FeedbackResponses
from engine.customers.pages.common import TOKEN_FIELD, LinkGate, Pages, SameOrigin, translator
from engine.journeys.errors import JourneyError
from engine.platform.links.tokens import LinkClaims, LinkPurpose, LinkSigner
from engine.platform.logging import get_logger
from engine.platform.translations import Translate
from workflows.ids import order_id_from
from workflows.orders import Feedback, OrderEvent
from workflows.vocabulary import EventType

log = get_logger(__name__)

# engine.platform.links.urls.feedback_url makes these addresses.
FEEDBACK_PATH = "/f/{token}"
FEEDBACK_MAX_AGE = timedelta(days=60)
MIN_SCORE, MAX_SCORE = 0, 10
MAX_COMMENT_LENGTH = 2000
# The largest genuine answer: a comment of MAX_COMMENT_LENGTH characters of four
# UTF-8 bytes, each byte percent-encoded (24,000 bytes), the token (at most 2,000)
# and the score. 64 KiB holds it twice over; anything bigger is refused unread.
FEEDBACK_MAX_BODY_BYTES = 64 * 1024
SCORE_FIELD = "score"
COMMENT_FIELD = "comment"


class JourneyEvents(Protocol):
    """Delivers an event to an order's journey (``engine.journeys.directory.JourneyDirectory``);
    raises JourneyError when the order has no running journey."""

    async def record_event(self, order_id: str, event: OrderEvent) -> str: ...


def feedback_event_id(token: str) -> str:
    """The journey event id of the answer given through ``token``: the same for
    every submit of one link, so the journey applies it once."""
    return f"feedback-{token_hash(token)[:40]}"


class FeedbackPage:
    def __init__(
        self,
        journeys: JourneyEvents,
        responses: FeedbackResponses,
        signer: LinkSigner,
        pages: Pages,
        same_origin: SameOrigin,
    ) -> None:
        self._journeys = journeys
        self._responses = responses
        self._pages = pages
        self._gate = LinkGate(
            signer, pages, same_origin, LinkPurpose.FEEDBACK, FEEDBACK_MAX_AGE, what="feedback"
        )

    async def show(self, request: Request) -> Response:
        """GET: the picked score (if any) and a comment box; records nothing."""
        claims = self._gate.claims(request)
        if isinstance(claims, Response):
            return claims
        token: str = request.path_params["token"]
        if await self._responses.answered(token):
            return self._already_answered(request)
        raw = request.query_params.get(SCORE_FIELD)
        score = None if raw is None or raw == "" else _score(raw, translator(request))
        if isinstance(score, str):
            return self._form(request, token, None, "", status=400, error=score)
        return self._form(request, token, score, "")

    async def answer(self, request: Request) -> Response:
        """POST: deliver the answer to the journey once and keep it."""
        claims = self._gate.post_claims(request)
        if isinstance(claims, Response):
            return claims
        token: str = request.path_params["token"]
        _ = translator(request)
        async with request.form() as form:
            if (refusal := self._gate.form_refusal(request, form, token)) is not None:
                return refusal
            parsed = _answer(form, _)
        if isinstance(parsed, str):
            score = _score(str(form.get(SCORE_FIELD, "")), _)
            picked = score if isinstance(score, int) else None
            return self._form(request, token, picked, "", status=400, error=parsed)
        score, comment = parsed
        if await self._responses.answered(token):
            return self._already_answered(request)

        delivered = await self._deliver(claims, token, score, comment)
        if delivered is None:
            return self._pages.message(
                request,
                503,
                _("Please try again"),
                _(
                    "We could not save your answer just now. Nothing was recorded; "
                    "please send it again in a few minutes."
                ),
            )
        try:
            await self._responses.record(
                token,
                customer_id=claims.customer_id,
                journey_id=claims.journey_id,
                score=score,
                comment=comment,
                delivered=delivered,
            )
        except CustomerErased:
            # Their journeys were ended and their data deleted: keep none of it.
            log.info("feedback of an erased customer not kept", journey_id=claims.journey_id)
        log.info("feedback recorded", journey_id=claims.journey_id, delivered=delivered)
        return self._pages.message(
            request,
            200,
            _("Thank you!"),
            _("Thank you for your answer. It helps us get better."),
        )

    async def _deliver(
        self, claims: LinkClaims, token: str, score: int, comment: str
    ) -> bool | None:
        """True when the journey took the event, False when it has ended (or never
        existed), None when Temporal could not be asked."""
        event = OrderEvent(
            event_id=feedback_event_id(token),
            type=EventType.FEEDBACK,
            occurred_at=datetime.now(UTC),
            feedback=Feedback(score=score, comment=comment),
        )
        try:
            await self._journeys.record_event(order_id_from(claims.journey_id), event)
        except JourneyError:
            log.info("feedback for a journey that has ended", journey_id=claims.journey_id)
            return False
        except (RPCError, ConnectionError) as err:
            log.warning("feedback not delivered", journey_id=claims.journey_id, error=str(err))
            return None
        return True

    def _already_answered(self, request: Request) -> Response:
        _ = translator(request)
        return self._pages.message(
            request,
            410,
            _("Already answered"),
            _("We already have your answer from this link. Thank you! Nothing was changed."),
        )

    def _form(
        self,
        request: Request,
        token: str,
        score: int | None,
        comment: str,
        *,
        status: int = 200,
        error: str = "",
    ) -> Response:
        return self._pages.render(
            request,
            "feedback.html.j2",
            status,
            token=token,
            token_field=TOKEN_FIELD,
            score=score,
            comment=comment,
            max_comment=MAX_COMMENT_LENGTH,
            error=error,
        )


def _score(raw: str, _: Translate) -> int | str:
    """The score, or what is wrong with it (naming the field)."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not MIN_SCORE <= int(text) <= MAX_SCORE:
        return _("score must be a whole number from %(low)d to %(high)d.") % {
            "low": MIN_SCORE,
            "high": MAX_SCORE,
        }
    return int(text)


def _answer(form: FormData, _: Translate) -> tuple[int, str] | str:
    """(score, comment) from the form, or what is wrong with it (naming the field)."""
    known = {TOKEN_FIELD, SCORE_FIELD, COMMENT_FIELD}
    for name, value in form.multi_items():
        if name not in known:
            return _("Unknown field %(name)s. Nothing was recorded.") % {"name": repr(name[:60])}
        if not isinstance(value, str):
            return _("%(name)s must be text. Nothing was recorded.") % {"name": name}
    raw_score = form.get(SCORE_FIELD)
    if not isinstance(raw_score, str) or not raw_score.strip():
        return _("score is required: pick a number from 0 to 10.")
    score = _score(raw_score, _)
    if isinstance(score, str):
        return score
    raw_comment = form.get(COMMENT_FIELD) or ""
    assert isinstance(raw_comment, str)
    comment = raw_comment.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(comment) > MAX_COMMENT_LENGTH:
        return _("comment must be at most %(most)d characters (it has %(length)d).") % {
            "most": MAX_COMMENT_LENGTH,
            "length": len(comment),
        }
    if "\x00" in comment:
        return _("comment must not contain NUL characters.")
    return score, comment
