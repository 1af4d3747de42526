"""normalize.coerce: typed input (parquet, JSON numbers) means exactly what the same values written as text mean."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from driftwatch.errors import DataError
from driftwatch.normalize import coerce, coerce_batches
from driftwatch.store import IncomingSnapshot, Store

NEW_YORK = ZoneInfo("America/New_York")


def test_typed_columns_mean_what_their_text_means():
    as_text = pl.DataFrame(
        {
            "order_id": ["A1", "A2", "A3"],
            "placed_at": ["2026-11-01T10:00:00+01:00", "2026-07-01T09:30:00", "2026-03-08"],
            "total": ["19.90", "1,200", "7"],
        }
    )
    typed = pl.DataFrame(
        {
            "order_id": ["A1", "A2", "A3"],
            "placed_at": [
                datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
                datetime(2026, 7, 1, 9, 30, tzinfo=NEW_YORK),
                datetime(2026, 3, 8, 0, 0, tzinfo=NEW_YORK),
            ],
            "total": [Decimal("19.90"), Decimal("1200"), Decimal("7")],
        },
        schema_overrides={"total": pl.Decimal(18, 2)},
    )
    naive = typed.with_columns(
        # 04:00 EST on the night the clocks go back is 09:00 UTC
        pl.Series("placed_at", [datetime(2026, 11, 1, 4, 0), datetime(2026, 7, 1, 9, 30), datetime(2026, 3, 8)])
    )
    from_text = coerce(as_text, "orders", naive_timezone="America/New_York")
    assert from_text.bad.height == 0
    for frame in (typed, naive):
        got = coerce(frame, "orders", naive_timezone="America/New_York")
        assert got.bad.height == 0
        assert got.good.equals(from_text.good)
    assert from_text.good["placed_at"].to_list() == [
        datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
        datetime(2026, 7, 1, 13, 30, tzinfo=UTC),  # 09:30 EDT
        datetime(2026, 3, 8, 5, 0, tzinfo=UTC),  # midnight EST
    ]


def test_a_typed_decimal_finer_than_the_store_is_quarantined_and_a_coarser_one_never_is():
    prices = [Decimal("12.345678"), Decimal("12.300000"), Decimal("-0.000001")]
    frame = pl.DataFrame({"sku": ["P1", "P2", "P3"], "price": prices}, schema_overrides={"price": pl.Decimal(18, 6)})
    got = coerce(frame, "products", first_line=2)
    assert got.bad.select("line", "column").rows() == [(2, "price"), (4, "price")]
    coarse = frame.with_columns(pl.col("price").round(2).cast(pl.Decimal(18, 2)))
    assert coerce(coarse, "products").bad.height == 0


def test_a_date_column_is_midnight_in_the_source_timezone():
    frame = pl.DataFrame({"order_id": ["A1"], "placed_at": [date(2026, 1, 15)]})
    got = coerce(frame, "orders", naive_timezone="America/New_York")
    assert got.good["placed_at"].to_list() == [datetime(2026, 1, 15, 5, 0, tzinfo=UTC)]


def test_mixed_timestamp_formats_in_one_column_each_parse_and_nonsense_is_reported_once():
    values = [
        "2026-11-01T10:00:00Z",
        "2026-11-01 10:00:00",
        "11/01/2026 10:00",
        "2026-11-01T10:00:00.250-08:00",
        "11/01/2026",
        "31/31/2026",
        None,
    ]
    frame = pl.DataFrame({"order_id": [f"A{i}" for i in range(len(values))], "placed_at": values})
    got = coerce(frame, "orders", first_line=2)
    parsed = dict(zip(got.good["order_id"], got.good["placed_at"], strict=True))
    assert parsed == {
        "A0": datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
        "A1": datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
        "A2": datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
        "A3": datetime(2026, 11, 1, 18, 0, 0, 250000, tzinfo=UTC),
        "A4": datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
        "A6": None,
    }
    assert got.bad.select("line", "column", "value").rows() == [(7, "placed_at", "31/31/2026")]


def test_a_typed_number_that_does_not_fit_is_quarantined_not_wrapped():
    frame = pl.DataFrame(
        {"sku": ["S1", "S2"], "location": ["W1", "W1"], "on_hand": pl.Series([5, 2**63 + 1], dtype=pl.UInt64)}
    )
    got = coerce(frame, "inventory", first_line=1)
    assert got.good["on_hand"].to_list() == [5]
    assert got.bad.select("line", "column", "reason").rows() == [(2, "on_hand", "not a valid whole number")]


def test_the_store_takes_the_rows_that_passed_without_a_copy_and_knows_them_again(tmp_path):
    frame = pl.DataFrame({"order_id": ["A1", "A2", "A2", "A3"], "total": ["1.00", "2.00", "3.00", "x"]})
    coerced = coerce(frame, "orders")
    assert coerced.good["order_id"].to_list() == ["A1"]  # both copies of A2 and the unparseable A3 held back
    captured = datetime(2026, 11, 23, tzinfo=UTC)
    lean = IncomingSnapshot.from_coerced("ometria", "orders", captured, coerced)
    copied = IncomingSnapshot("ometria", "orders", captured, coerced.good, coerced.bad)
    assert (lean.row_count, lean.content_hash()) == (1, copied.content_hash())
    with Store(tmp_path / "s.duckdb") as store:
        first, again = store.ingest([lean])[0], store.ingest([copied])[0]
        assert store.latest("ometria", "orders")["order_id"].to_list() == ["A1"]
    assert first.loaded and not again.loaded and first.snapshot.row_count == 1


def test_batches_are_one_snapshot_with_lines_counted_across_them():
    whole = pl.DataFrame({"order_id": ["A1", "A2", "A3", "A1", "A5"], "total": ["1.00", "2.00", "x", "4.00", "5.00"]})
    batches = [whole.slice(0, 2), whole.slice(2, 2), whole.slice(4, 1)]
    together = coerce(whole, "orders", first_line=2)
    batched = coerce_batches(batches, "orders", first_line=2)
    assert batched.good.equals(together.good)
    assert batched.bad.equals(together.bad)
    # A1 repeats across batches (lines 2 and 5); A3's total (line 4) is reported where the file has it.
    assert batched.bad.select("line", "column").rows() == [(2, "order_id"), (4, "total"), (5, "order_id")]
    assert batched.good["order_id"].to_list() == ["A2", "A5"]


def test_a_file_with_no_batches_at_all_is_a_clear_error():
    with pytest.raises(DataError, match=r"drop/orders\.parquet: no rows to read"):
        coerce_batches(iter([]), "orders", origin="drop/orders.parquet")


def test_text_and_emails_have_one_spelling_per_character():
    # "é" precomposed (NFC) and as e + combining accent (NFD), as some exports write it, are one name.
    nfc, nfd = "Léo Müller", unicodedata.normalize("NFD", "Léo Müller")
    assert nfc != nfd
    frame = pl.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "first_name": [nfc, nfd, " Ann "],
            "email": ["Zoé@Example.fr", unicodedata.normalize("NFD", "zoé@example.fr"), "ANN@example.com"],
        }
    )
    good = coerce(frame, "customers", origin="t").good
    assert good["first_name"].to_list() == [nfc, nfc, "Ann"]
    assert good["email"].to_list() == ["zoé@example.fr", "zoé@example.fr", "ann@example.com"]
