"""Check files: the shipped catalogue loads, a bad file names itself and the key, a user adds a check by
adding a file."""

from pathlib import Path

import pytest

from driftwatch.config import parse_config
from driftwatch.engine import load_catalogue
from driftwatch.engine.checkfile import BUILTIN_CHECKS_DIR, check_files, load_check
from driftwatch.engine.rules import RULES
from driftwatch.engine.views import VIEWS
from driftwatch.errors import UserError

CATALOGUE = {
    "stock_parity", "ats_inflation", "stock_staleness", "catalogue_parity", "order_presence",
    "order_status_drift", "order_value_drift", "unmapped_codes", "fulfilment_events", "tracking_sync",
    "acceptance_sla", "consent_parity", "customer_master_parity", "ltv_after_refunds", "returns_sync",
    "payout_matching", "snapshot_health",
    "negative_stock",  # beyond DESIGN.md's table: the ERP's stock figures below zero (issue 15)
}  # fmt: skip

VALID = """
id = "price_only"
title = "Prices agree"
owner = "merchandising"
reads = ["products"]
applies_to = ["products"]

[[compare]]
entity = "products"
expected = "source_products"
actual = "target_products"
keys = ["sku"]

[[compare.fields]]
name = "price"
kind = "money"
tolerance = 0.05
severity = "high"
message = "{key}: {actual} on {target}, {expected} in the ERP"
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "check.toml"
    path.write_text(text, encoding="utf-8")
    return load_check(path, set(VIEWS), set(RULES))


def test_the_shipped_catalogue_is_the_design_catalogue():
    assert set(load_catalogue(parse_config({}))) == CATALOGUE
    assert {p.name.removesuffix(".toml") for p in check_files(BUILTIN_CHECKS_DIR)} == CATALOGUE


def test_a_valid_file_loads(tmp_path):
    spec = _load(tmp_path, VALID)
    assert spec.id == "price_only" and spec.compares[0].fields[0].tolerance == 0.05


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (('owner = "merchandising"\n', ""), "owner", "required key is missing"),
        (('kind = "money"', 'kind = "euros"'), "compare[0].fields[0].kind", "'euros' is not one of"),
        (('actual = "target_products"', 'actual = "nope"'), "compare[0].actual", "unknown view 'nope'"),
        (('reads = ["products"]', 'reads = ["widgets"]'), "reads", "unknown entity 'widgets'"),
        (('severity = "high"', 'severity = "urgent"'), "compare[0].fields[0].severity", "not one of"),
        (('keys = ["sku"]', "keys = []"), "compare[0].keys", "non-empty list"),
        (('title = "Prices agree"', 'title = "x"\ncolour = "red"'), "colour", "unknown key"),
        (('id = "price_only"', 'id = "Price Only"'), "id", "lower_snake_case"),
        (('id = "price_only"', 'id = "price_only"\nrule = "stock_staleness"'), "rule", "exactly one of them"),
        (("tolerance = 0.05", "tolerance = true"), "compare[0].fields[0].tolerance", "expected text or a number"),
        (("tolerance = 0.05", 'tolerance = "slack"'), "compare[0].fields[0].tolerance", "no option 'slack'"),
        (('kind = "money"', 'kind = "money"\nwhen = "diff > {limit}"'), "compare[0].fields[0].when", "{limit}"),
        (('keys = ["sku"]', 'keys = ["sku"]\ngroup = "style"'), "compare[0].group", "must be one of the keys"),
    ],
)
def test_a_bad_file_is_an_error_naming_file_and_key(tmp_path, change, key, problem):
    with pytest.raises(UserError) as err:
        _load(tmp_path, VALID.replace(*change))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'check.toml'}: {key}: ")
    assert problem in message


def test_not_toml_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"check\.toml: not valid TOML"):
        _load(tmp_path, "id = ")


def test_a_user_adds_a_check_by_adding_a_file(tmp_path):
    (tmp_path / "price_only.toml").write_text(VALID, encoding="utf-8")
    cfg = parse_config({"audit": {"checks_dirs": [str(tmp_path)]}})
    assert "price_only" in load_catalogue(cfg)


def test_a_user_check_may_not_reuse_a_shipped_id(tmp_path):
    (tmp_path / "mine.toml").write_text(VALID.replace('id = "price_only"', 'id = "stock_parity"'), encoding="utf-8")
    cfg = parse_config({"audit": {"checks_dirs": [str(tmp_path)]}})
    with pytest.raises(UserError, match="'stock_parity' is already defined"):
        load_catalogue(cfg)
