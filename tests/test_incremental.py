"""Merging changes into kept records, and the settings that schedule full pulls, on small hand-built frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from driftwatch import incremental
from driftwatch.connectors.base import RECORD
from driftwatch.errors import UserError
from driftwatch.incremental import Memory, merge, merge_parsed, parse_duration
from driftwatch.normalize import Parsed, coerce, finish, parse_frame


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides={c: pl.String for row in rows for c in row})


def sorted_rows(merged: pl.DataFrame) -> list[dict]:
    return merged.sort(merged.columns, nulls_last=True).to_dicts()


def test_changes_replace_kept_records_by_key_and_new_ones_are_added():
    kept = frame([{"customer_id": "A", "email": "a@x.io"}, {"customer_id": "B", "email": "b@x.io"}])
    changes = frame([{"customer_id": "B", "email": "b2@x.io"}, {"customer_id": "C", "email": "c@x.io"}])
    assert sorted_rows(merge(kept, changes, ("customer_id",))) == [
        {"customer_id": "A", "email": "a@x.io"},
        {"customer_id": "B", "email": "b2@x.io"},
        {"customer_id": "C", "email": "c@x.io"},
    ]


def test_records_gone_are_removed_and_a_key_of_several_columns_works():
    kept = frame([{"sku": "S1", "location": "W1", "available": "1"}, {"sku": "S1", "location": "W2", "available": "2"},
                  {"sku": "S2", "location": "W1", "available": "3"}])  # fmt: skip
    changes = frame([{"sku": "S1", "location": "W2", "available": "9"}])
    merged = merge(kept, changes, ("sku", "location"))
    assert sorted_rows(merged)[1] == {"sku": "S1", "location": "W2", "available": "9"} and merged.height == 3
    single = merge(frame([{"sku": "S1"}, {"sku": "S2"}]), frame([{"sku": "S3"}]).clear(), ("sku",), gone=["S1"])
    assert single["sku"].to_list() == ["S2"]
    with pytest.raises(ValueError, match="one-column key"):
        merge(kept, changes, ("sku", "location"), gone=["S1"])


def test_a_changed_record_replaces_all_its_rows_so_a_line_removed_from_an_order_goes():
    kept = frame([
        {RECORD: "m-1", "order_id": "SO1", "line_no": "1", "sku": "A"},
        {RECORD: "m-1", "order_id": "SO1", "line_no": "2", "sku": "B"},
        {RECORD: "m-2", "order_id": "SO2", "line_no": "1", "sku": "C"},
    ])  # fmt: skip
    # Order m-1 now has one line, and got its ERP number: its key moved from SO1 to ERP-1.
    changes = frame([{RECORD: "m-1", "order_id": "ERP-1", "line_no": "1", "sku": "A"}])
    merged = merge(kept, changes, ("order_id", "line_no"), gone=["m-2"])
    assert sorted_rows(merged) == [{RECORD: "m-1", "order_id": "ERP-1", "line_no": "1", "sku": "A"}]


def test_no_changes_keep_everything_and_nothing_kept_takes_the_changes():
    kept = frame([{"event_id": "E1", "metric": "order_placed"}])
    assert merge(kept, kept.clear(), ("event_id",)).equals(kept)
    assert merge(kept.clear(), kept, ("event_id",)).equals(kept)


def test_a_column_only_the_changes_carry_is_empty_for_kept_records():
    kept = frame([{"sku": "S1", "name": "Shirt"}])
    changes = frame([{"sku": "S2", "name": "Cap", "price": "9.50"}])
    assert sorted_rows(merge(kept, changes, ("sku",))) == [
        {"sku": "S1", "name": "Shirt", "price": None},
        {"sku": "S2", "name": "Cap", "price": "9.50"},
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("10m", timedelta(minutes=10)),
     ("30s", timedelta(seconds=30)), ("2w", timedelta(weeks=2)), (" 1.5d ", timedelta(hours=36)),
     (3, timedelta(days=3)), ("0s", timedelta(0))],
)  # fmt: skip
def test_durations(value, expected):
    assert parse_duration(value, "sources.klaviyo.full_every") == expected


@pytest.mark.parametrize("value", ["weekly", "7", "-1d", "", True, -2, [7]])
def test_a_duration_it_cannot_read_is_a_one_line_error_naming_the_setting(value):
    with pytest.raises(UserError, match=r"^sources\.klaviyo\.full_every: expected a duration such as"):
        parse_duration(value, "sources.klaviyo.full_every")


def test_a_column_the_changes_do_not_hold_keeps_the_kept_value_and_a_new_record_its_own():
    kept = frame([{"sku": "S1", "name": "Shirt", "price": "10"}, {"sku": "S2", "name": "Cap", "price": "5"}])
    changes = frame([{"sku": "S1", "name": None, "price": "12"}, {"sku": "S3", "name": "Scarf", "price": "7"}])
    assert sorted_rows(merge(kept, changes, ("sku",), carried=["name"])) == [
        {"sku": "S1", "name": "Shirt", "price": "12"},
        {"sku": "S2", "name": "Cap", "price": "5"},
        {"sku": "S3", "name": "Scarf", "price": "7"},
    ]


def customers(*rows: tuple) -> pl.DataFrame:
    columns = ("customer_id", "email", "lifetime_value")
    return pl.DataFrame(
        [dict(zip(columns, row, strict=True)) for row in rows], schema=dict.fromkeys(columns, pl.String)
    )


def parse(records: pl.DataFrame, first_line: int = 1) -> Parsed:
    return parse_frame(records, "customers", origin="klaviyo customers", first_line=first_line)


@pytest.mark.parametrize("first_line", [1, 2])
def test_parsing_only_the_changes_gives_what_parsing_the_merged_whole_gives(first_line):
    """Kept: a good record, one with a bad email, a key held twice (both copies held back), a bad amount,
    one deleted since. Changes: the key held twice comes once (it replaces both copies and is stored), a
    new bad record, a new key held twice (both held back), and the good record again."""
    kept = customers(
        ("A", "a@x.io", "1.00"),
        ("B", "not an email", "2.00"),
        ("C", "c1@x.io", "3.00"),
        ("D", "d@x.io", "many"),
        ("C", "c2@x.io", "3.00"),
        ("E", "e@x.io", "5.00"),
    )
    changes = customers(
        ("C", "c@x.io", "3.50"),
        ("F", "f@x.io", "lots"),
        ("G", "g1@x.io", "1.00"),
        ("G", "g2@x.io", "1.00"),
        ("A", "a@x.io", "1.00"),
    )
    merged, parsed = merge_parsed(
        kept, parse(kept, first_line), changes, ("customer_id",), gone=["E"], parse=lambda r: parse(r, first_line),
        first_line=first_line,
    )  # fmt: skip
    whole = coerce(merged, "customers", origin="klaviyo customers", first_line=first_line)
    got = finish(parsed, "customers", origin="klaviyo customers", first_line=first_line)
    assert merged["customer_id"].to_list() == ["B", "D", "C", "F", "G", "G", "A"]
    assert got.rows.equals(whole.rows) and got.keep.equals(whole.keep)
    assert got.bad.equals(whole.bad)
    assert got.bad.select("line", "column").rows() == [
        (first_line + 0, "email"),
        (first_line + 1, "lifetime_value"),
        (first_line + 3, "lifetime_value"),
        (first_line + 4, "customer_id"),
        (first_line + 5, "customer_id"),
    ]


def test_without_parsed_rows_or_with_other_columns_the_whole_is_parsed_again():
    kept = customers(("A", "a@x.io", "1.00"), ("B", "bad", "2.00"))
    calls: list[int] = []

    def counting(records: pl.DataFrame) -> Parsed:
        calls.append(records.height)
        return parse(records)

    merge_parsed(kept, None, customers(("C", "c@x.io", "1.00")), ("customer_id",), parse=counting, first_line=1)
    wider = customers(("C", "c@x.io", "1.00")).with_columns(pl.lit("x").alias("country"))
    merge_parsed(kept, parse(kept), wider, ("customer_id",), parse=counting, first_line=1)
    merge_parsed(kept, parse(kept), customers(("C", "c@x.io", "1.00")), ("customer_id",), parse=counting, first_line=1)
    assert calls == [3, 3, 1]


def test_parsed_rows_kept_by_a_driftwatch_that_parses_otherwise_are_not_reused(tmp_path, monkeypatch):
    records = customers(("A", "a@x.io", "1.00"), ("B", "bad", "2.00"))
    memory = Memory(tmp_path, "klaviyo")
    memory.begin("f", datetime.now(UTC))
    memory.finish(
        fingerprint="f", captured_at=datetime.now(UTC), full=True, records={"customers": records},
        parsed={"customers": parse(records)}, snapshots={},
    )  # fmt: skip
    kept = Memory(tmp_path, "klaviyo").parsed("customers")
    assert kept is not None and kept.rows.equals(parse(records).rows) and kept.problems.height == 1
    monkeypatch.setattr(incremental, "parser_digest", lambda: "another normaliser")
    assert Memory(tmp_path, "klaviyo").parsed("customers") is None
    assert Memory(tmp_path, "klaviyo").records("customers").equals(records)  # the records themselves still serve
