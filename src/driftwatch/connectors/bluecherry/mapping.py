"""BlueCherry report exports: the headers seen in the field, mapped to canonical columns.

CGS publishes no public BlueCherry API; its data reaches integrations as scheduled report exports. Each
entity comes from one report (products from the StyleMaster export, inventory from the inventory-quantities
report), and reports differ by client and by version: the defaults below cover the headers seen in the
field, a client maps its own in `[sources.<name>.column_map.<entity>]`.

- `BLUECHERRY_COLUMN_MAP`: per report, its headers -> canonical columns. Several headers may name one
  column (StyleMaster exports say `SIZES` where other reports say `Size`).
- `BLUECHERRY_HEADER_VARIANTS`: per report, a header that is another report's name for the same field,
  read as that name before anything else (so the SKU template's `{Size}` finds a StyleMaster's `SIZES`).
- `BLUECHERRY_UNUSED`: headers BlueCherry reports carry that driftwatch compares nothing from. These, and
  a header another report maps (`Style Name` on an inventory export), are dropped with a note; a header
  nobody knows stops the load, naming where to map or ignore it.
"""

# Report headers seen in BlueCherry exports in the field, per report (entity).
BLUECHERRY_COLUMN_MAP: dict[str, dict[str, str]] = {
    "products": {
        "SKU": "sku",
        "Style": "style",
        "Color #": "colour",
        "Size": "size",
        "Style Name": "name",
        "Retail Price": "price",
        "Currency": "currency",
        "Status": "status",
        "Last Modified": "updated_at",
    },
    "inventory": {
        "SKU": "sku",
        "Location": "location",
        "Total QOH": "on_hand",
        "Total Open": "allocated",
        "Total Ship To WIP": "on_order",
        "Safety Stock": "safety_stock",
        "Avail QOH": "available",
        "Last Modified": "updated_at",
    },
}
# The same report field under another header: StyleMaster exports say SIZES for the size label.
BLUECHERRY_HEADER_VARIANTS: dict[str, dict[str, str]] = {
    "products": {"SIZES": "Size"},
    "inventory": {"SIZES": "Size"},
}
# Export columns that carry nothing driftwatch compares.
BLUECHERRY_UNUSED = (
    "Div",
    "Loc Org",
    "BRAND",
    "Color Name",
    "Label",
    "Dm/Pk",
    "SzBk",
    "UOM",
    "UPC Number",
    "Season",
    "Style Type",
    "Total Pick",
    "Total Received",
    "Total Invoice",
    "Total Prod",
    "Loc Std Cost",
    "A Price Intr1",
    "Loc Curr",
    "P1",
    "P2",
    "P3",
    "P1 Name",
    "P2 Name",
    "P3 Name",
    "Size Code",
    "VENDOR",
    "GENDER",
    "HS Number",
    "Country",
    "Style Detail Content Desc",
    "LINE TYPE/RM",
)
BLUECHERRY_SKU_TEMPLATE = "{Style}-{Color #}-{Size}"
