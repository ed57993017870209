"""Every payload inside a history event, so a history can be decoded or rewritten in place."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
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
        for item in child_messages(descriptor, value):
            yield from payloads_in(item)


def child_messages(descriptor: FieldDescriptor, value: Any) -> list[Message]:
    """The messages a set field of a message holds: none for a scalar field, each
    entry's value for a map, each element for a repeated field."""
    if descriptor.message_type is None:
        return []
    if descriptor.message_type.GetOptions().map_entry:
        items = list(value.values())
    elif descriptor.is_repeated:
        items = list(value)
    else:
        items = [value]
    return [item for item in items if isinstance(item, Message)]
