"""The commented starter configuration written by `driftwatch init`.

Its commented example lines are valid settings: uncommenting every one of them gives a configuration that
loads. A test holds the starter to that, so it cannot drift from the keys driftwatch accepts.
"""

STARTER_CONFIG = """\
# driftwatch configuration. Every key is optional; delete what you do not need.
# Secrets never go in this file: name the environment variable that holds each one (keys ending in _env).
# A key driftwatch does not know is refused with its name, so a typo never goes unnoticed.

[store]
path = "driftwatch.duckdb"          # the DuckDB file holding every snapshot, finding and journal

[audit]
fail_on = "high"                    # exit code 1 when drift at or above this severity is found
# checks_dirs = ["my-checks"]       # extra check files (TOML), beside the built-in ones

# Where keyed comparisons run (README: Scaling out). Default: in this process, in one part.
# [engine]
# executor = "dask"                 # needs pip install 'driftwatch[dask]' here and on every worker
# scheduler = "tcp://10.0.0.5:8786" # without it, a local cluster of `workers` processes for the run
# workers = 2
# partitions = 16                   # parts each comparison splits into (default: 2 per Dask worker)
# shared_dir = "/mnt/driftwatch-parts"  # a folder every worker mounts at the same path

# Which system of record feeds which target, with which entities. Without any [[feeds]] table,
# bluecherry feeds every target with everything both sides hold.
[[feeds]]
source = "bluecherry"
target = "mirakl"
entities = ["products", "inventory", "orders", "order_lines", "shipments", "payout_lines"]
# channels = ["mirakl"]             # ERP channels of this marketplace's orders (default: its own name)
# locations = ["WH01", "WH02"]      # ERP locations whose stock this target sells (default: all)

[[feeds]]
source = "bluecherry"
target = "klaviyo"
entities = ["customers", "products", "inventory", "events", "orders", "order_lines", "returns"]
# channels = ["web", "retail"]      # orders of these channels (default: every channel but marketplaces)

# A source is an instance of a platform. One named after its platform needs no `kind`; name the others:
# [[feeds]]
# source = "bluecherry"
# target = "mirakl_de"
# entities = ["products", "inventory", "orders", "order_lines", "shipments", "payout_lines"]

[sources.bluecherry]
timezone = "America/New_York"       # exports give local times without an offset
sku_template = "{Style}-{Color #}-{Size}"
# path = "/srv/exports/bluecherry"  # where `driftwatch pull` picks up the report exports
# ignore_columns = ["Buyer Notes"]  # report columns to leave out

# Map your report headers to canonical columns, per entity:
# [sources.bluecherry.column_map.inventory]
# "Avail QOH" = "available"

[sources.klaviyo]
base_url = "https://a.klaviyo.com"
api_key_env = "KLAVIYO_API_KEY"
# Pulls ask only for what changed since the last one where the platform can say; every full_every they
# read everything, which is when deletions show (`driftwatch pull --full` does it now).
# full_every = "7d"                 # a full pull at least this often (s, m, h, d or w)
# overlap = "10m"                   # read back this far before the last pull, for clocks and late records

[sources.mirakl]
base_url = "https://your-marketplace.mirakl.net"
api_key_env = "MIRAKL_API_KEY"
# carrier_map = { "UPS GROUND" = "ups" }   # ERP carrier code = the code this marketplace knows

# A second Mirakl marketplace, with its own key:
# [sources.mirakl_de]
# kind = "mirakl"
# base_url = "https://your-other-marketplace.mirakl.net"
# api_key_env = "MIRAKL_DE_API_KEY"

# BlueCherry status codes are set up per client: name yours here (raw code = canonical status).
[statuses.bluecherry]
# "10" = "placed"
# "50" = "shipped"
# "90" = "cancelled"
# Return authorisations and credit memos: authorised, received, refunded or cancelled.
# [statuses.bluecherry.returns]
# "RA" = "authorised"
# "CM" = "refunded"
# Product statuses: active or discontinued.
# [statuses.bluecherry.products]
# "D" = "discontinued"

# Reports, and where their readers open them: an alert links to link_base + the report's file name.
[report]
out_dir = "driftwatch-reports"      # relative to this file
# link_base = "https://intranet.example/driftwatch/"   # the URL where out_dir is published

# Who hears about which drift: apprise URLs (Slack, email, Teams, webhooks) held in environment variables.
# [[alerts.routes]]
# name = "cx"
# url_env = ["DRIFTWATCH_CX_SLACK"]
# teams = ["customer-service", "crm"]   # owners of the checks; or checks = [...], targets = [...]
# min_severity = "high"

# Repair guards: a plan that would go further on one target is refused unless applied with --override-guards.
# [repair]
# max_zero_stock_share = 0.05       # share of its SKUs going to zero stock
# max_discontinue_share = 0.10      # share of its offers discontinued or deleted
# max_consent_changes = 50
# max_actions_per_target = 10000

# How fast each target must show the ERP's changes (p95 of the lag, or { p50 = "1h", p95 = "6h" }); a
# breach alerts the routes that hear of the sync_latency check (owner: integration).
# [slo.klaviyo]
# inventory = "6h"

# Tolerances and lags per check, and per target (`driftwatch checks list` shows each check's options):
# [checks.stock_parity]
# stock_tolerance = 0
# [checks.stock_parity.targets.mirakl]
# stock_tolerance = 2

# Money is equal within one minor unit of its currency (0.01 GBP, 1 JPY) unless you say otherwise:
# one amount for every currency, or amounts per currency (`default` for the others).
# [checks.order_value_drift]
# money_tolerance = "0.05"
# [checks.catalogue_parity.money_tolerance]
# JPY = "5"
# default = "0.02"
"""
