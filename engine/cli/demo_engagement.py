"""The part of ``aftercare demo`` that makes the report show what journeys achieve:
customers answer the feedback survey (a promoter gets the review request, whose
subject line is the default plan's experiment), open the emails and click a tracked
link as a browser would, and order again, so the repeat orders are credited to the
messages they clicked (``aftercare report --plan default --since 1d``, and
``--plan consumables``).

Only customers for whom it is day (09:00 to 20:00 local) take part: a review request
at night would wait for the morning, past the demo. A click within seconds of the
send would be taken for a mail scanner's, so the demo waits that long first.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import typer
from aftercare.v1 import journey_pb2 as pb

from clients import AftercareClient
from engine.cli.samples import sample_order, sample_shipment, sample_timezone
from engine.insights.click_redirects import DEFAULT_SCANNER_WINDOW
from engine.platform.settings import Settings

# (customer variant, feedback score): a promoter gets the review request (the
# experiment), a passive the thanks; both are messages a repeat order can credit.
ANSWERS: Sequence[tuple[int, int]] = ((0, 10), (1, 8), (2, 10))
FOLLOW_UPS = {10: "review_request", 8: "passive_thanks"}
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Safari/605.1.15"
)
DAYTIME = (9, 20)


def daytime(variant: int, now: datetime) -> bool:
    hour = now.astimezone(ZoneInfo(sample_timezone(variant))).hour
    return DAYTIME[0] <= hour < DAYTIME[1]


async def engage(client: AftercareClient, settings: Settings, prefix: str) -> None:
    """Feedback, clicks and repeat orders for the customers for whom it is day."""
    now = datetime.now(UTC)
    answering = [(variant, score) for variant, score in ANSWERS if daytime(variant, now)]
    if not answering:
        typer.echo("engagement: it is night for every sample customer; no feedback asked")
        return
    sent: list[tuple[int, str, str]] = []  # (variant, order id, follow-up step)
    for n, (variant, score) in enumerate(answering, start=1):
        order_id = f"{prefix}-fb{n}"
        await client.start_journey(sample_order(order_id, variant))
        for event_type in (pb.EVENT_TYPE_SHIPPED, pb.EVENT_TYPE_DELIVERED):
            event = pb.OrderEvent(event_id=f"{order_id}-{event_type}", type=event_type)
            if event_type == pb.EVENT_TYPE_SHIPPED:
                event.shipment.CopyFrom(sample_shipment(order_id))
            await client.record_event(order_id, event)
        feedback = pb.OrderEvent(event_id=f"{order_id}-feedback", type=pb.EVENT_TYPE_FEEDBACK)
        feedback.feedback.score = score
        await client.record_event(order_id, feedback)
        step = FOLLOW_UPS[score]
        if await _sent(client, order_id, step):
            typer.echo(f"{order_id}: feedback {score}, {step} sent")
            sent.append((variant, order_id, step))
        else:
            # Over the marketing frequency cap (a demo run shortly before), or deferred.
            typer.echo(f"{order_id}: feedback {score}, {step} not sent yet (see the journey)")
    if not sent:
        return
    # Past the window in which a click is taken for a mail scanner's.
    await asyncio.sleep(DEFAULT_SCANNER_WINDOW.total_seconds() + 1)
    clicked = await _click(settings, [(order_id, step) for _, order_id, step in sent])
    typer.echo(f"clicked {clicked} tracked link(s) as a browser would")
    for n, (variant, _, _) in enumerate(sent, start=1):
        repeat = f"{prefix}-re{n}"
        await client.start_journey(sample_order(repeat, variant))
        typer.echo(f"{repeat}: a repeat order, credited to the message its customer clicked")
    typer.echo(
        "the report: aftercare report --plan default --since 1d "
        "(and --plan consumables: the coffee and skincare orders)"
    )


async def _sent(client: AftercareClient, order_id: str, step: str) -> bool:
    for _ in range(50):
        journey = await client.get_journey(order_id)
        if any(message.step == step and message.status == "sent" for message in journey.sent):
            return True
        await asyncio.sleep(0.2)
    return False


async def _click(settings: Settings, messages: Sequence[tuple[str, str]]) -> int:
    """Follow the first tracked link of each message, from its email in the mail sink."""
    prefix = settings.public_base_url.rstrip("/") + "/c/"
    links = [
        link
        for order_id, step in messages
        for link in _tracked_links(settings.mail_dir, f"order-{order_id}", step, prefix)[:1]
    ]
    clicked = 0
    async with httpx.AsyncClient(
        trust_env=False, timeout=10, headers={"User-Agent": BROWSER}
    ) as http:
        for link in links:
            answer = await http.get(link, follow_redirects=False)
            clicked += answer.status_code in (302, 303, 307)
    return clicked


def _tracked_links(mail_dir: Path, journey_id: str, step: str, prefix: str) -> list[str]:
    found: list[str] = []
    cutoff = datetime.now().timestamp() - timedelta(hours=1).total_seconds()
    for path in sorted(mail_dir.glob("*.eml")):
        if path.stat().st_mtime < cutoff:
            continue
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if not isinstance(parsed, EmailMessage):
            continue
        if parsed["X-Aftercare-Journey"] != journey_id or parsed["X-Aftercare-Step"] != step:
            continue
        body = parsed.get_body(preferencelist=("plain",))
        text = str(body.get_content()) if body is not None else ""
        found += re.findall(re.escape(prefix) + r"[A-Za-z0-9_.\-]+", text)
    return found
