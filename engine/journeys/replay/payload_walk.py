"""Every payload inside a history event, so a history can be decoded or rewritten in place."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, SearchAttributes


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload inside ``message`` (inputs, results, failures, headers, memos,
    summaries) except search attributes: the server indexes those, so no codec ever
    encodes them."""
    if isinstance(message, Payload):
        yield message
        return
    if isinstance(message, SearchAttributes):
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif descriptor.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)
