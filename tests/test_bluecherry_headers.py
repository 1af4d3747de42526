"""BlueCherry exports vary by report and by client: header variants per report, known headers that nothing
compares dropped with a note, unknown headers still one actionable error."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from test_filedrop import manifest, write

from driftwatch.cli import cli
from driftwatch.config import Config, default_feeds, parse_config
from driftwatch.connectors.bluecherry.connector import Connector
from driftwatch.errors import DataError
from driftwatch.filedrop import load_directory
from driftwatch.store import Store

# A StyleMaster export: one row per size, the size label under SIZES, no SKU column.
STYLEMASTER = (
    "Style,Color #,Color Name,SIZES,Size Code,UPC Number,Style Name,Season,VENDOR,Retail Price,Status\n"
    '00412,010,Black,M,A,012345678905,Wrap Dress,AW26,BU0125,"1,290.00",ACTIVE\n'
    '00412,010,Black,L,A,012345678912,Wrap Dress,AW26,BU0125,"1,290.00",ACTIVE\n'
)
# An inventory-quantities report: it carries the style's name and other report fields nothing compares.
INVENTORY = (
    "Div,Style,Color #,Style Name,Color Name,Size,Location,Total QOH,Total Pick,Avail QOH,Total Open\n"
    "HL,00412,010,Wrap Dress,Black,M,DC1,10,1,8,2\n"
)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store.duckdb") as s:
        yield s


def _drop(tmp_path, **files: str):
    for entity, content in files.items():
        write(tmp_path / "drop", f"bluecherry/{entity}.csv", content)
    manifest(tmp_path / "drop", "bluecherry")
    return tmp_path / "drop"


def test_a_stylemaster_export_reads_sizes_as_size_and_notes_what_it_drops(tmp_path, store):
    report = load_directory(store, _drop(tmp_path, products=STYLEMASTER), Config(feeds=default_feeds()))
    products = store.latest("bluecherry", "products").sort("sku")
    assert products["sku"].to_list() == ["00412-010-L", "00412-010-M"]  # the SKU template found SIZES
    assert products["size"].to_list() == ["L", "M"]
    assert products["name"].to_list() == ["Wrap Dress"] * 2
    assert str(products["price"][0]) == "1290.0000"
    (note,) = report.notes
    assert "products.csv: ignored column(s) driftwatch does not compare" in note
    assert "Color Name, Size Code, UPC Number, Season, VENDOR" in note


def test_a_header_another_report_maps_is_dropped_with_a_note_not_an_error(tmp_path, store):
    report = load_directory(store, _drop(tmp_path, inventory=INVENTORY), Config(feeds=default_feeds()))
    row = store.latest("bluecherry", "inventory").row(0, named=True)
    assert (row["sku"], row["location"], row["on_hand"], row["available"]) == ("00412-010-M", "DC1", 10, 8)
    assert report.notes == [
        f"{tmp_path / 'drop/bluecherry/inventory.csv'}: ignored column(s) driftwatch does not compare: "
        "Div, Style Name, Color Name, Total Pick"
    ]


def test_an_unknown_header_still_stops_the_load_naming_where_to_map_it(tmp_path, store):
    drop = _drop(tmp_path, inventory=INVENTORY.replace("Total Pick", "Buyer Notes"))
    with pytest.raises(DataError) as err:
        load_directory(store, drop, Config(feeds=default_feeds()))
    assert "unknown column 'Buyer Notes' for inventory" in str(err.value)
    assert "[sources.bluecherry.column_map.inventory]" in str(err.value)
    assert store.latest("bluecherry", "inventory") is None
    # Listed by the client, it is dropped without a note: the client said so.
    cfg = parse_config({"sources": {"bluecherry": {"ignore_columns": ["Buyer Notes"]}}})
    report = load_directory(store, drop, cfg)
    assert "Buyer Notes" not in " ".join(report.notes)


def test_a_clients_own_header_for_another_report_is_known_too(tmp_path, store):
    cfg = parse_config({"sources": {"bluecherry": {"column_map": {"products": {"Desc": "name"}}}}})
    drop = _drop(tmp_path, inventory=INVENTORY.replace("Style Name", "Desc"))
    report = load_directory(store, drop, cfg)
    assert "Desc" in report.notes[0]


def test_both_spellings_in_one_file_read_the_usual_one(tmp_path, store):
    both = "Style,Color #,SIZES,Size\n00412,010,Medium,M\n00412,010,Large,L\n"
    report = load_directory(store, _drop(tmp_path, products=both), Config(feeds=default_feeds()))
    assert store.latest("bluecherry", "products").sort("sku")["size"].to_list() == ["L", "M"]
    assert report.notes[0].endswith("does not compare: SIZES")


def test_the_cli_prints_the_note_and_a_pull_logs_it(tmp_path, caplog):
    drop = _drop(tmp_path, inventory=INVENTORY)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "s.duckdb"), "load", str(drop)])
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "Style Name" in result.output
    with caplog.at_level(logging.INFO, logger="driftwatch.connectors"):
        pulled = Connector({"path": str(drop / "bluecherry")}).pull(["inventory"])
    assert sorted(pulled.frames["inventory"].columns) == ["allocated", "available", "location", "on_hand", "sku"]
    assert "Style Name" in caplog.text
