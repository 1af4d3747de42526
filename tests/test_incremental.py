"""Merging changes into kept records, and the settings that schedule full pulls, on small hand-built frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from driftwatch import incremental
from driftwatch.connectors.base import RECORD
from driftwatch.errors import UserError
from driftwatch.incremental import Kept, Memory, merge, merge_parsed, parse_duration
from driftwatch.normalize import Parsed, coerce, finish, parse_frame
from driftwatch.store import SnapshotInfo


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
    parsed, part = merge_parsed(
        kept, parse(kept, first_line), changes, ("customer_id",), gone=["E"], parse=lambda r: parse(r, first_line),
        first_line=first_line,
    )  # fmt: skip
    merged = merge(kept, changes, ("customer_id",), gone=["E"])
    whole = coerce(merged, "customers", origin="klaviyo customers", first_line=first_line)
    got = finish(parsed, "customers", origin="klaviyo customers", first_line=first_line)
    assert merged["customer_id"].to_list() == ["B", "D", "C", "F", "G", "G", "A"]
    # Kept for the next pull: the kept records dropped (A, C twice, E) and the changes, parsed on their own.
    assert part.removed.to_list() == [0, 2, 4, 5] and part.records.equals(changes)
    assert part.parsed.rows.equals(parse(changes, first_line).rows)
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

    change = customers(("C", "c@x.io", "1.00"))
    _, whole = merge_parsed(kept, None, change, ("customer_id",), parse=counting, first_line=1)
    wider = change.with_columns(pl.lit("x").alias("country"))
    _, wider_whole = merge_parsed(kept, parse(kept), wider, ("customer_id",), parse=counting, first_line=1)
    _, part = merge_parsed(kept, parse(kept), change, ("customer_id",), parse=counting, first_line=1)
    assert calls == [3, 3, 1]
    # Parsed whole, kept whole (a fresh base); parsed changes, kept as a part.
    assert whole.removed is None and whole.records.height == 3 and wider_whole.removed is None
    assert part.removed is not None and part.records.equals(change)
    # Asked for a fresh base (a chain of parts grown long): the changes parsed alone, the merged whole kept.
    _, fresh = merge_parsed(kept.select("customer_id"), parse(kept), change, ("customer_id",), parse=counting,
                            first_line=1, schema=kept.schema, records=lambda: kept, whole=True)  # fmt: skip
    assert calls == [3, 3, 1, 1] and fresh.removed is None
    assert fresh.records.equals(merge(kept, change, ("customer_id",)))
    assert fresh.parsed.rows.equals(parse(fresh.records).rows)


def test_parsed_rows_kept_by_a_driftwatch_that_parses_otherwise_are_not_reused(tmp_path, monkeypatch):
    records = customers(("A", "a@x.io", "1.00"), ("B", "bad", "2.00"))
    memory = Memory(tmp_path, "klaviyo")
    memory.begin("f", datetime.now(UTC))
    memory.finish(
        fingerprint="f", captured_at=datetime.now(UTC), full=True, kept={"customers": Kept(records, parse(records))},
        snapshots={},
    )  # fmt: skip
    kept = Memory(tmp_path, "klaviyo").parsed("customers")
    assert kept is not None and kept.rows.equals(parse(records).rows) and kept.problems.height == 1
    monkeypatch.setattr(incremental, "parser_digest", lambda: "another normaliser")
    assert Memory(tmp_path, "klaviyo").parsed("customers") is None
    assert Memory(tmp_path, "klaviyo").records("customers").equals(records)  # the records themselves still serve


# -- kept records as a base and a part per incremental night ------------------------------------------------

KEY = ("customer_id",)
DAY = timedelta(days=1)
START = datetime(2026, 12, 1, tzinfo=UTC)


def keep_night(tmp_path, records: pl.DataFrame | None, changes=None, gone=(), *, night: int = 0) -> Memory:
    """One pull's keeping, as pull.py does it: a full night keeps `records` whole; an incremental one merges
    `changes` (and `gone`) into the kept records, reading only their key column, and keeps the part."""
    memory = Memory(tmp_path, "klaviyo")
    memory.begin("f", START + night * DAY)
    if records is not None:
        kept = Kept(records, parse(records))
    else:
        _, kept = merge_parsed(
            memory.records("customers", columns=KEY), memory.parsed("customers"), changes, KEY, gone,
            parse=parse, first_line=1, schema=memory.schema("customers"),
            records=lambda: memory.records("customers"),
        )  # fmt: skip
    memory.finish(fingerprint="f", captured_at=START + night * DAY, full=records is not None,
                  kept={"customers": kept}, snapshots={"customers": SnapshotInfo(
                      f"s{night}", "klaviyo", "customers", START, 0, 0, "h", ())})  # fmt: skip
    return Memory(tmp_path, "klaviyo")


def assert_holds(memory: Memory, expected: pl.DataFrame) -> None:
    """The memory reads back exactly `expected` and its parse (rows, problems and their lines)."""
    assert memory.records("customers").equals(expected)
    got, want = memory.parsed("customers"), parse(expected)
    assert got is not None and got.rows.equals(want.rows) and got.problems.equals(want.problems)


def kept_files(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "klaviyo" / incremental.FOLDER).glob("*.parquet"))


BASE = customers(("A", "a@x.io", "1.00"), ("B", "bad", "2.00"), ("C", "c@x.io", "3.00"), ("D", "d@x.io", "x"))
NIGHTS = [  # (changes, gone) per incremental night
    (customers(("B", "b@x.io", "2.00"), ("E", "e@x.io", "5.00")), ()),
    (customers(("A", "a2@x.io", "oops"), ("F", "f@x.io", "6.00")), ("C",)),
    (customers(("E", "e2@x.io", "5.50"), ("G", "g1@x.io", "7.00"), ("G", "g2@x.io", "7.00")), ()),
    (customers(("A", "a3@x.io", "1.50")).clear(), ("D",)),
    (customers(("G", "g@x.io", "7.00"), ("C", "c@x.io", "3.00")), ("B",)),
]


def night_merged(records: pl.DataFrame, night: int) -> pl.DataFrame:
    changes, gone = NIGHTS[night]
    return merge(records, changes, KEY, gone)


def test_five_incremental_nights_keep_a_part_each_and_read_back_what_merging_the_whole_gives(tmp_path):
    memory, expected = keep_night(tmp_path, BASE), BASE
    for night, (changes, gone) in enumerate(NIGHTS, start=1):
        memory = keep_night(tmp_path, None, changes, gone, night=night)
        expected = merge(expected, changes, KEY, gone)
        assert_holds(memory, expected)
        assert memory.parts("customers") == night
        # A part holds the night's changes alone, not every record again.
        part = memory.state.chains["customers"][-1]
        assert pl.read_parquet(memory.folder / f"{part}.parquet").equals(changes)
    assert len(kept_files(tmp_path)) == 3 + 4 * len(NIGHTS)  # the base's files and each part's, nothing else
    assert memory.records("customers", columns=["customer_id", "not held"]).columns == ["customer_id"]


def test_a_full_night_keeps_a_fresh_base_drops_the_parts_and_records_deleted_on_the_platform_are_gone(tmp_path):
    keep_night(tmp_path, BASE)
    for night, (changes, gone) in enumerate(NIGHTS[:2], start=1):
        keep_night(tmp_path, None, changes, gone, night=night)
    # Klaviyo's changes never show a deleted profile: D is still kept after two incremental nights; the full
    # night's records no longer hold it (nor C, deleted and seen as gone), and nothing brings it back.
    assert "D" in Memory(tmp_path, "klaviyo").records("customers")["customer_id"].to_list()
    full = customers(("A", "a2@x.io", "1.00"), ("B", "b@x.io", "2.00"), ("E", "e@x.io", "5.00"))
    memory = keep_night(tmp_path, full, night=3)
    assert_holds(memory, full)
    assert memory.parts("customers") == 0 and len(kept_files(tmp_path)) == 3
    memory = keep_night(tmp_path, None, *NIGHTS[2], night=4)
    assert_holds(memory, night_merged(full, 2))
    assert "D" not in memory.records("customers")["customer_id"].to_list()


def test_a_folder_kept_before_parts_existed_is_read_as_a_base_and_its_files_go_once_replaced(tmp_path):
    folder = tmp_path / "klaviyo" / incremental.FOLDER
    keep_night(tmp_path, BASE)
    memory = Memory(tmp_path, "klaviyo")
    (stem,) = memory.state.chains.pop("customers")  # the layout an older driftwatch wrote: named after the entity
    for part in ("", ".rows", ".problems"):
        (folder / f"{stem}{part}.parquet").rename(folder / f"customers{part}.parquet")
    (folder / incremental.STATE).write_text(memory.state.to_json().replace('"chains": {}', '"x": 0'))
    assert_holds(Memory(tmp_path, "klaviyo"), BASE)
    memory = keep_night(tmp_path, None, *NIGHTS[0], night=1)
    assert memory.state.chains["customers"][0] == "customers" and "customers.parquet" in kept_files(tmp_path)
    assert_holds(memory, night_merged(BASE, 0))
    keep_night(tmp_path, BASE, night=2)
    assert "customers.parquet" not in kept_files(tmp_path)


@pytest.mark.parametrize(("full", "killed_at"), [(False, k) for k in range(6)] + [(True, k) for k in range(5)])
def test_a_keeping_killed_halfway_leaves_the_previous_records_readable_and_the_next_cleans_up(
    tmp_path, monkeypatch, full, killed_at
):
    """Killed at each write of the night: the state marking it under way, each file (4 for a part, 3 for a
    base), the state marking it complete."""
    keep_night(tmp_path, BASE)
    keep_night(tmp_path, None, *NIGHTS[0], night=1)
    before, files = night_merged(BASE, 0), kept_files(tmp_path)
    writes = {"n": 0}
    real_atomic_path, real_write_text = incremental.atomic_path, incremental.write_text

    def killed(real):
        def write(*args, **kwargs):
            writes["n"] += 1
            if writes["n"] > killed_at:
                raise KeyboardInterrupt  # the process stops here
            return real(*args, **kwargs)

        return write

    monkeypatch.setattr(incremental, "atomic_path", killed(real_atomic_path))
    monkeypatch.setattr(incremental, "write_text", killed(real_write_text))
    with pytest.raises(KeyboardInterrupt):
        keep_night(tmp_path, night_merged(before, 1) if full else None, *NIGHTS[1], night=2)
    monkeypatch.undo()
    memory = Memory(tmp_path, "klaviyo")
    assert_holds(memory, before)
    assert memory.state.completed is (killed_at == 0)  # begin() marked the pull under way: the next one is full
    keep_night(tmp_path, night_merged(before, 1), night=3)
    assert len(kept_files(tmp_path)) == 3 and not set(files) & set(kept_files(tmp_path))
