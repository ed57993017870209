"""What a bus message holds: one of the API's requests in proto JSON form.

The AMQP ``type`` property names the request by its full proto name,
``aftercare.v1.StartJourneyRequest`` or ``aftercare.v1.RecordEventRequest``; the body
is that request as protobuf's JSON mapping writes it (field names in lowerCamelCase
or as in the .proto, enums by name: ``{"orderId": "A-1", "event": {"eventId": "e-1",
"type": "EVENT_TYPE_SHIPPED"}}``). A body that is not such a request is refused
naming the problem.
"""

from __future__ import annotations

from aftercare.v1 import journey_pb2 as pb
from google.protobuf import json_format

from engine.integrations.intake import JourneyRequest

START_JOURNEY = pb.StartJourneyRequest.DESCRIPTOR.full_name
RECORD_EVENT = pb.RecordEventRequest.DESCRIPTOR.full_name
_KINDS: dict[str, type[pb.StartJourneyRequest] | type[pb.RecordEventRequest]] = {
    START_JOURNEY: pb.StartJourneyRequest,
    RECORD_EVENT: pb.RecordEventRequest,
}
# Far above any order; the API refuses requests over 4 MiB too.
MAX_BODY_BYTES = 4 * 1024 * 1024


class NotARequest(Exception):
    """The message is no request this consumer knows; the text says why."""


def decode(message_type: str | None, body: bytes) -> JourneyRequest:
    kind = _KINDS.get(message_type or "")
    if kind is None:
        raise NotARequest(
            f"the message's type property must be {START_JOURNEY} or {RECORD_EVENT}, "
            f"got {(message_type or '')[:100]!r}"
        )
    if len(body) > MAX_BODY_BYTES:
        raise NotARequest(f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NotARequest("the body is not UTF-8 JSON") from None
    request = kind()
    try:
        json_format.Parse(text, request)
    except json_format.ParseError as err:
        raise NotARequest(f"the body is not a {message_type} in proto JSON: {err}") from None
    return request


def encode(request: JourneyRequest) -> tuple[str, bytes]:
    """The ``type`` property and body of a message carrying ``request``."""
    return request.DESCRIPTOR.full_name, json_format.MessageToJson(request).encode()
