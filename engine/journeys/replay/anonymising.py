"""Personal data in decoded histories replaced by stable fake values.

Each original value gets a fake made by Faker seeded with a hash of the value (and
its kind), so the same email becomes the same fake email in every payload, every
history and every export: a journey's order, its events and its sends stay
consistent with each other, and two journeys of one customer still share a customer.

Which values are personal comes from the shapes journeys carry
(:mod:`workflows.orders`): a customer (an object with ``email``: its name, email and
phone), an address (an object with ``line1``: name, street lines, city, postcode,
region) and a feedback comment. Ids (order, customer, event, SKU) are opaque and
stay, as do country codes and product names, which plans choose by. Afterwards every
other string in the history's payloads (a failure message quoting an address, a
summary) has each original replaced by its fake as well.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History

from engine.journeys.replay.payload_walk import child_messages, payloads_in

if TYPE_CHECKING:
    from faker import Faker

JSON_ENCODING = b"json/plain"
# Shorter originals (an initial, "DE") are too likely to occur by chance in other text.
_MIN_SCRUB_LENGTH = 4
# What is also looked for in free text: values that identify a person. Cities,
# postcodes and regions are not (and "Berlin" also names the zone "Europe/Berlin").
_SCRUBBED_KINDS = frozenset({"name", "email", "phone", "line1", "line2", "comment"})

_CUSTOMER_FIELDS = ("name", "email", "phone")
_ADDRESS_FIELDS = ("name", "line1", "line2", "city", "postal_code", "region")


def _fake_phone(fake: Faker) -> str:
    # E.164 from the seeded digits: a phone number a journey accepts.
    return "+" + fake.msisdn()[:12]


_FAKERS: dict[str, Callable[[Faker], str]] = {
    "name": lambda fake: str(fake.name()),
    "email": lambda fake: str(fake.email(safe=True)),
    "phone": _fake_phone,
    "line1": lambda fake: str(fake.street_address()),
    "line2": lambda fake: str(fake.secondary_address()),
    "city": lambda fake: str(fake.city()),
    "postal_code": lambda fake: str(fake.postcode()),
    "region": lambda fake: str(fake.state()),
    "comment": lambda fake: str(fake.sentence()),
}


class Anonymiser:
    """Replaces personal data in decoded histories; one instance keeps the mapping of
    every value it has seen (and :attr:`originals` lists them, for checks)."""

    def __init__(self, salt: str = "aftercare-export-v1") -> None:
        # Imported here: Faker takes a quarter of a second to load, and every `aftercare`
        # command would pay it; only an export needs it.
        from faker import Faker

        self._salt = salt
        self._faker = Faker()
        self._fakes: dict[str, str] = {}
        # The originals free text is searched for (see _SCRUBBED_KINDS), longest first.
        self._scrubbed: list[str] = []

    @property
    def originals(self) -> frozenset[str]:
        return frozenset(self._fakes)

    def fake_for(self, kind: str, original: str) -> str:
        """The fake standing in for ``original`` (a ``kind`` of :data:`_FAKERS`):
        the same for the same value on every run and machine."""
        if not original:
            return original
        known = self._fakes.get(original)
        if known is not None:
            return known
        digest = hashlib.sha256(f"{self._salt}\0{kind}\0{original}".encode()).digest()
        self._faker.seed_instance(int.from_bytes(digest[:8], "big"))
        fake = _FAKERS[kind](self._faker)
        self._fakes[original] = fake
        if kind in _SCRUBBED_KINDS and len(original) >= _MIN_SCRUB_LENGTH:
            self._scrubbed.append(original)
            self._scrubbed.sort(key=len, reverse=True)
        return fake

    def anonymise(self, history: History) -> History:
        """A copy of a decoded ``history`` with personal data replaced."""
        result = History()
        result.CopyFrom(history)
        documents: list[tuple[Payload, Any]] = []
        for payload in payloads_in(result):
            if payload.metadata.get("encoding") != JSON_ENCODING:
                continue
            try:
                documents.append((payload, json.loads(payload.data)))
            except ValueError:
                continue
        replaced = [(payload, self._replace_fields(document)) for payload, document in documents]
        for payload, document in replaced:
            scrubbed = self._scrub_strings(document)
            payload.data = json.dumps(scrubbed, separators=(",", ":"), ensure_ascii=False).encode()
        self._scrub_message(result)
        return result

    def _scrub_message(self, message: Message) -> None:
        """Every string field outside the payloads too (failure messages, stack
        traces, details the server wrote)."""
        for descriptor, value in message.ListFields():
            if descriptor.type == FieldDescriptor.TYPE_STRING:
                if descriptor.is_repeated:
                    value[:] = [self.scrub(item) for item in value]
                else:
                    setattr(message, descriptor.name, self.scrub(value))
            else:
                for item in child_messages(descriptor, value):
                    self._scrub_message(item)

    def _replace_fields(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._replace_fields(item) for item in value]
        if not isinstance(value, dict):
            return value
        personal: tuple[str, ...] = ()
        if "email" in value:
            personal = _CUSTOMER_FIELDS
        elif "line1" in value:
            personal = _ADDRESS_FIELDS
        changed: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str) and (key in personal or key == "comment"):
                changed[key] = self.fake_for(key, item)
            else:
                changed[key] = self._replace_fields(item)
        return changed

    def _scrub_strings(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self._scrub_strings(item) for item in value]
        if isinstance(value, dict):
            return {key: self._scrub_strings(item) for key, item in value.items()}
        return value

    def scrub(self, text: str) -> str:
        """``text`` with every identifying original this anonymiser has replaced swapped
        for its fake, longest first (so a street is not half-replaced by its house number)."""
        for original in self._scrubbed:
            if original in text:
                text = text.replace(original, self._fakes[original])
        return text
