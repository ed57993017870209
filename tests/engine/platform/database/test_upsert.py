"""INSERT ... ON CONFLICT on each database we run on, and a clear refusal elsewhere."""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy import Table
from sqlalchemy.engine import make_url

from engine.platform.database.tables import SuppressedAddress
from engine.platform.database.upsert import insert_on_conflict

SUPPRESSIONS = cast(Table, SuppressedAddress.__table__)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_both_databases_get_an_on_conflict_clause(dialect: str) -> None:
    compiler = make_url(f"{dialect}://").get_dialect()()

    def sql(target: Table | type[SuppressedAddress]) -> str:
        statement = insert_on_conflict(dialect, target).on_conflict_do_nothing(
            index_elements=["channel", "address"]
        )
        values = statement.values(channel="email", address="a@x.test")
        return str(values.compile(dialect=compiler))

    assert sql(SUPPRESSIONS).startswith("INSERT INTO suppressions (channel, address)")
    assert "ON CONFLICT (channel, address) DO NOTHING" in sql(SUPPRESSIONS)
    assert sql(SuppressedAddress) == sql(SUPPRESSIONS)  # the ORM class: the same statement


def test_another_database_is_refused_by_name() -> None:
    with pytest.raises(NotImplementedError, match="'mysql' is not supported"):
        insert_on_conflict("mysql", SUPPRESSIONS)
