"""Why a journey operation was refused, in domain terms (the API maps each to a status)."""

from __future__ import annotations

from temporalio.client import WorkflowExecutionStatus


class JourneyError(Exception):
    pass


class JourneyNotFound(JourneyError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} has no journey")


class JourneyAlreadyExists(JourneyError):
    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id!r} already had a journey, which has ended; "
            "an order id cannot be reused"
        )


class CustomerWasErased(JourneyError):
    """The order's customer was erased (GDPR / CCPA): no journey may start for them,
    nor a data key be made for them again. ``field`` names the request field."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: this customer's data was erased; no journey can start for them")
        self.field = field


class NoPlanApplies(JourneyError):
    """No plan of the deployment's catalogue applies to the order: nothing started."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"order: {reason}")
        self.field = "order"


class JourneyEnded(JourneyError):
    def __init__(self, order_id: str, status: WorkflowExecutionStatus) -> None:
        super().__init__(f"the journey of order {order_id!r} has ended ({status.name.lower()})")
        self.status = status
