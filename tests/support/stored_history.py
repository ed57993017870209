"""What the Temporal server stores for a journey, read past the client's codec, and
the mail a journey sends: for tests that check payloads are encrypted."""

from __future__ import annotations

import asyncio

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.history.v1 import History
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client

from engine.devstack.mail_sink import MailSink, ReceivedMail


async def mail_for(sink: MailSink, journey_id: str, seconds: float = 60.0) -> ReceivedMail:
    """The first email the sink received for ``journey_id``, waiting for it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        for mail in sink.handler.received:
            if mail.message["X-Aftercare-Journey"] == journey_id:
                return mail
        if loop.time() > deadline:
            raise AssertionError(f"{journey_id}: no email within {seconds}s")
        await asyncio.sleep(0.05)


async def raw_history(client: Client, workflow_id: str) -> History:
    """The history exactly as the server stores it: no converter, no codec."""
    history = History()
    token = b""
    while True:
        response = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id),
                next_page_token=token,
            )
        )
        history.events.extend(response.history.events)
        token = response.next_page_token
        if not token:
            return history
