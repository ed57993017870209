"""The ``open_support_ticket`` activity: tell the support desk about an unhappy customer.

Posts JSON to the configured webhook with an ``Idempotency-Key`` header (the
journey id), so a retried call never opens a second ticket at a desk that
honours the header. Without a configured URL the journey records that no desk
was told.
"""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.platform.telemetry.provider_calls import provider_call
from workflows.contracts import (
    OPEN_SUPPORT_TICKET_ACTIVITY,
    SupportTicketInput,
    SupportTicketResult,
)


class SupportDeskActivities:
    def __init__(self, webhook_url: str | None, timeout_seconds: float = 10.0) -> None:
        self._url = webhook_url
        self._timeout = timeout_seconds

    @activity.defn(name=OPEN_SUPPORT_TICKET_ACTIVITY)
    async def open_support_ticket(self, request: SupportTicketInput) -> SupportTicketResult:
        if not self._url:
            return SupportTicketResult(status="not_configured")
        payload = {
            "type": "aftercare.detractor_feedback",
            "journey_id": request.journey_id,
            "order_id": request.order_id,
            "customer_id": request.customer_id,
            "score": request.score,
            "comment": request.comment,
        }
        with provider_call("support_desk", "open_ticket"):
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    self._url,
                    json=payload,
                    headers={"Idempotency-Key": f"{request.journey_id}/support_ticket"},
                )
            if response.status_code in (408, 425, 429) or response.status_code >= 500:
                response.raise_for_status()  # transient: Temporal retries with backoff
            if response.status_code >= 400:
                raise ApplicationError(
                    f"support desk refused the ticket: HTTP {response.status_code}",
                    type="SupportDeskRefused",
                    non_retryable=True,
                )
        reference = ""
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                reference = str(body.get("id") or body.get("ticket_id") or "")
        return SupportTicketResult(status="opened", reference=reference)
