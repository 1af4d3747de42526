"""driftwatch.toml refuses what it does not know: every unknown key, in every section, is named with its
file, its dotted key and what is allowed (with the closest allowed name when there is one)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import cli
from driftwatch.config import load_config, merge_options
from driftwatch.errors import UserError


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def uncomment_examples(text: str) -> tuple[str, int]:
    """The text with every commented line that is itself TOML (a setting or a table header) uncommented."""
    lines, uncommented = [], 0
    for line in text.splitlines():
        candidate = line[2:] if line.startswith("# ") else None
        try:
            if candidate is not None and candidate.strip():
                tomllib.loads(candidate)
                line, uncommented = candidate, uncommented + 1
        except tomllib.TOMLDecodeError:
            pass  # prose
        lines.append(line)
    return "\n".join(lines) + "\n", uncommented


def test_the_starter_loads_with_every_example_line_uncommented(tmp_path):
    starter = tmp_path / "driftwatch.toml"
    assert CliRunner().invoke(cli, ["init", "--path", str(starter)]).exit_code == 0
    load_config(starter)  # as written
    text, uncommented = uncomment_examples(starter.read_text(encoding="utf-8"))
    assert uncommented >= 25, text  # the examples really were found, not skipped as prose
    (tmp_path / "all" / "my-checks").mkdir(parents=True)  # the extra checks directory the example names
    cfg = load_config(write_config(tmp_path / "all", text))
    assert cfg.kind("mirakl_de") == "mirakl" and cfg.is_marketplace("mirakl_de")
    assert cfg.check_options("stock_parity", "mirakl") == {"stock_tolerance": 2}
    assert cfg.check_options("catalogue_parity")["money_tolerance"] == {"JPY": "5", "default": "0.02"}
    assert cfg.status_map("bluecherry")["50"] == "shipped"
    assert cfg.source("bluecherry")["column_map"] == {"inventory": {"Avail QOH": "available"}}


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("[store]\nfile = 'x.duckdb'\n", "store.file", "expected one of path"),
        ("[audit]\nfail_at = 'high'\n", "audit.fail_at: unknown key (did you mean 'fail_on'?)", "checks_dirs"),
        # A setting of another platform is not one of Klaviyo's.
        ("[sources.klaviyo]\nimport_timeout = 60\n", "sources.klaviyo.import_timeout", "api_key_env"),
        ("[sources.mirakl_fr]\nkind = 'mirakl'\nbase_ulr = 'x'\n", "sources.mirakl_fr.base_ulr", "'base_url'"),
        ("[sources.bluecherry.column_map.stock]\nQOH = 'on_hand'\n", "column_map.stock: unknown entity", "inventory"),
        # What the old starter gave when its examples were uncommented: a setting inside a column map.
        ("[sources.bluecherry.column_map.inventory]\nignore_columns = ['Notes']\n",
         "column_map.inventory.'ignore_columns': ['Notes'] is not a column of inventory", "on_hand"),
        ("[[feeds]]\nsource = 'bluecherry'\ntarget = 'klaviyo'\nentites = ['customers']\n", "feeds[0].entites",
         "(did you mean 'entities'?)"),
        ("[[feeds]]\nsource = 'bluecherry'\ntarget = 'klaviyo'\nlocations = 'WH1'\n", "feeds[0].locations",
         "expected a list of names"),
        ("statuses = ['shipped']\n", "statuses: expected a table", "[statuses]"),
        ("[checks.stock_parity]\ntolerance = 2\n", "checks.stock_parity.tolerance",
         "(did you mean 'stock_tolerance'?)"),
        ("[checks.stock_parit]\nstock_tolerance = 2\n", "checks.stock_parit: unknown check", "'stock_parity'"),
        ("[checks.stock_parity.targets.klaviyo]\nlag = 2\n", "checks.stock_parity.targets.klaviyo.lag",
         "expected one of stock_tolerance"),
        ("[checks.stock_parity.targets.klavyo]\nstock_tolerance = 2\n", "checks.stock_parity.targets.klavyo",
         "(did you mean 'klaviyo'?)"),
        ("[checks.stock_parity]\nstock_tolerance = '2'\n", "checks.stock_parity.stock_tolerance", "expected a number"),
        ("[checks.order_value_drift.money_tolerance]\nJYP = '5'\n", "checks.order_value_drift.money_tolerance",
         "(did you mean JPY?)"),
        ("[checks.order_value_drift]\nmoney_tolerance = '-1'\n", "order_value_drift.money_tolerance", "at least 0"),
        # Sections that other parts read validate themselves when the file is read, just as strictly.
        ("[report]\nout = 'r'\n", "[report]: unknown setting(s) out", "out_dir"),
        ("[alerts]\nretries = 3\n", "[alerts]: unknown setting(s) retries", "retry_attempts"),
        ("[[alerts.routes]]\nname = 'x'\nurls = ['json://h/']\nseverity = 'high'\n", "unknown setting(s) severity",
         "min_severity"),
        ("[repair]\nmax_zero = 0.1\n", "[repair] max_zero: unknown setting", "max_zero_stock_share"),
        ("[payouts]\ncomission = {}\n", "payouts: unknown key(s) comission", "commission"),
        ("[payouts.marketplaces.klaviyo]\nchannel = 'web'\n", "payouts.marketplaces.klaviyo: not a marketplace",
         "expected one of mirakl"),
        ("[payouts.marketplaces.mirakl]\nchanel = 'x'\n", "payouts.marketplaces.mirakl: unknown key(s) chanel",
         "channel"),
        ("[payouts.commission.categories.shoes]\nrate = '0.1'\nskus = ['S*']\nsku = ['T*']\n",
         "payouts.commission.categories.shoes: unknown key(s) sku", "rate, skus"),
    ],
)  # fmt: skip
def test_an_unknown_key_is_refused_with_file_key_and_what_is_allowed(tmp_path, text, key, allowed):
    path = write_config(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and key in message and allowed in message, message


def test_every_problem_is_reported_at_once_each_on_its_own_line(tmp_path):
    path = write_config(
        tmp_path,
        "[audit]\nfail_at = 'high'\n[sources.klaviyo]\nbase_ulr = 'x'\n"
        "[checks.stock_parity]\ntolerance = 1\n[checks.consent_parity]\nrequire_mail = true\n",
    )
    with pytest.raises(UserError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    # The file's own sections first; the checks' options once the rest is sound.
    assert [line.split(": ")[1] for line in lines] == ["audit.fail_at", "sources.klaviyo.base_ulr"]
    path.write_text("[checks.stock_parity]\ntolerance = 1\n[checks.consent_parity]\nrequire_mail = true\n")
    with pytest.raises(UserError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "checks.stock_parity.tolerance",
        "checks.consent_parity.require_mail",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_a_check_in_an_extra_directory_declares_its_own_options(tmp_path):
    checks = tmp_path / "my-checks"
    checks.mkdir()
    (checks / "price_floor.toml").write_text(
        'id = "price_floor"\ntitle = "t"\nowner = "o"\nreads = ["products"]\napplies_to = ["products"]\n'
        'rule = "stock_staleness"\n[options]\nallowed_lag_hours = 24\nseverity = "low"\n',
        encoding="utf-8",
    )
    ok = "[audit]\nchecks_dirs = ['my-checks']\n[checks.price_floor.targets.klaviyo]\nallowed_lag_hours = 48\n"
    assert load_config(write_config(tmp_path, ok)).check_options("price_floor", "klaviyo") == {"allowed_lag_hours": 48}
    with pytest.raises(UserError, match=r"checks\.price_floor\.floor: unknown option of price_floor"):
        load_config(write_config(tmp_path, ok + "[checks.price_floor]\nfloor = 1\n"))


def test_table_options_add_up_from_check_to_target_and_a_single_amount_replaces():
    file = {"money_tolerance": {}, "labels": {}, "allowed_lag_hours": 24}
    check = {"money_tolerance": {"JPY": "5"}, "labels": {"DHL": "dhl"}}
    target = {"money_tolerance": {"EUR": "0.05"}, "labels": {"UPS": "ups"}, "allowed_lag_hours": 48}
    merged = merge_options(merge_options(file, check), target)
    assert merged == {"money_tolerance": {"JPY": "5", "EUR": "0.05"}, "labels": {"DHL": "dhl", "UPS": "ups"},
                      "allowed_lag_hours": 48}  # fmt: skip
    # One amount is for every currency: it replaces per-currency entries above it, and a table below it adds
    # currencies to it (the amount stays the default for the rest).
    assert merge_options(check, {"money_tolerance": "0.10"})["money_tolerance"] == "0.10"
    assert merge_options({"money_tolerance": "0.10"}, {"money_tolerance": {"JPY": "5"}})["money_tolerance"] == {
        "default": "0.10",
        "JPY": "5",
    }
