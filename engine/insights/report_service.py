"""ReportsService: the plan report over gRPC (scope reports:read), and stopping an
experiment with a winner (journeys:admin; engine.insights.experiment_stop)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from aftercare.v1 import reports_pb2 as pb
from aftercare.v1 import reports_pb2_grpc as pb_grpc

from engine.insights.experiment_stop import ExperimentStopper, stop_refusal
from engine.insights.report_lookup import ReportLookup
from engine.insights.report_model import InvalidReportRequest, UnknownPlan
from engine.insights.report_period import checked_period
from engine.insights.report_proto import report_message
from engine.platform.rpc.answers import Refusal, answered
from engine.platform.rpc.violations import FieldViolation, InvalidRequest


def _refusal(error: Exception) -> Refusal | None:
    if isinstance(error, UnknownPlan):
        return grpc.StatusCode.NOT_FOUND, str(error)
    return stop_refusal(error)


_answered = answered(
    refuse=_refusal,
    # The report never calls Temporal.
    unavailable=lambda err: f"unavailable ({err}); retrying is safe",
)


class ReportsServicer(pb_grpc.ReportsServiceServicer):
    def __init__(
        self, lookup: ReportLookup, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        # StopExperiment (engine.insights.experiment_stop); None: not served.
        self.experiments: ExperimentStopper | None = None

    @_answered
    async def GetPlanReport(  # noqa: N802 (the gRPC method's name)
        self, request: pb.GetPlanReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPlanReportResponse:
        try:
            period = checked_period(
                request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None,
                request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None,
                self._clock(),
            )
            report = await self._lookup.report(request.plan, period)
        except InvalidReportRequest as err:
            raise InvalidRequest([FieldViolation(err.field, err.problem)]) from None
        return report_message(report)

    @_answered
    async def StopExperiment(  # noqa: N802 (the gRPC method's name)
        self, request: pb.StopExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopExperimentResponse:
        if self.experiments is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "experiments are not served here")
        assert self.experiments is not None
        return await self.experiments.stop(request)
