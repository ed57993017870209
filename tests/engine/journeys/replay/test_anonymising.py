"""The anonymiser's promises: the same value gets the same fake in every payload and
every run, free text is scrubbed of identifying values, and what plans choose by
(country, time zone, products) stays."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History, HistoryEvent

from engine.journeys.replay.anonymising import Anonymiser
from engine.journeys.replay.payload_walk import payloads_in


def json_payload(document: object) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(document).encode())


def history_of(*documents: object) -> History:
    history = History()
    for document in documents:
        event = HistoryEvent()
        event.workflow_execution_signaled_event_attributes.input.payloads.append(
            json_payload(document)
        )
        history.events.append(event)
    return history


CUSTOMER = {
    "id": "cus-1",
    "name": "Rosalind Fairweather",
    "email": "rosalind@example.org",
    "phone": "+4915199887766",
    "timezone": "Europe/Berlin",
}
ADDRESS = {
    "name": "Rosalind Fairweather",
    "line1": "Lindenstrasse 4",
    "city": "Berlin",
    "postal_code": "10969",
    "country_code": "DE",
}


def documents(history: History) -> list[dict[str, object]]:
    return [json.loads(payload.data) for payload in payloads_in(history)]


def test_values_map_to_the_same_fakes_everywhere() -> None:
    order = {"customer": CUSTOMER, "shipping_address": ADDRESS, "items": [{"name": "Mug"}]}
    event = {"feedback": {"score": 3, "comment": "Call Rosalind Fairweather at home"}}
    failure = {"message": "SMTP refused rosalind@example.org"}
    first = documents(Anonymiser().anonymise(history_of(order, event, failure)))
    again = documents(Anonymiser().anonymise(history_of(order)))
    text = json.dumps(first)
    for original in (
        "Rosalind",
        "Fairweather",
        "rosalind@example.org",
        "+4915199887766",
        "Lindenstrasse",
    ):
        assert original not in text, original
    customer = first[0]["customer"]
    address = first[0]["shipping_address"]
    assert isinstance(customer, dict)
    assert isinstance(address, dict)
    # Another anonymiser (another run) makes the same fakes; the name agrees between
    # the customer and the address; free text carries the same fakes.
    assert again[0] == first[0]
    assert customer["name"] == address["name"]
    assert customer["email"] in json.dumps(first[2])
    assert str(customer["phone"]).startswith("+")
    # What plans and timing read stays.
    assert customer["id"] == "cus-1"
    assert customer["timezone"] == "Europe/Berlin"
    assert address["country_code"] == "DE"
    assert first[0]["items"] == [{"name": "Mug"}]
    assert first[1]["feedback"]["score"] == 3  # type: ignore[index]


def test_different_people_get_different_fakes() -> None:
    fakes = Anonymiser()
    assert fakes.fake_for("email", "a@example.org") != fakes.fake_for("email", "b@example.org")
    assert fakes.fake_for("name", "Ann Smith") != fakes.fake_for("name", "Bea Jones")
