"""BlueCherry report exports: the headers seen in the field, mapped to canonical columns.

CGS publishes no public BlueCherry API; its data reaches integrations as scheduled report exports. These
defaults cover the StyleMaster and inventory-quantity reports; a client maps its own reports in
`[sources.bluecherry.column_map.<entity>]`.
"""

# Report headers seen in BlueCherry exports in the field (StyleMaster and inventory-quantity reports).
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
# Export columns that carry nothing driftwatch compares; dropped without complaint.
BLUECHERRY_IGNORED = (
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
    "SIZES",
    "Size Code",
    "VENDOR",
    "GENDER",
    "HS Number",
    "Country",
    "Style Detail Content Desc",
    "LINE TYPE/RM",
)
BLUECHERRY_SKU_TEMPLATE = "{Style}-{Color #}-{Size}"
