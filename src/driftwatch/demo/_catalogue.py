"""The product catalogue, pack bundles and warehouse stock of the demo retailer.

SKU index `i` below `n_components` is a garment: style `i // 10`, one of two colourways, one of five sizes.
Indices from `n_components` on are packs (marketplace bundles) whose stock is derived from their
components. Every attribute is a function of the index, so any slice can be generated on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from driftwatch.demo._draw import Draw

SKUS_PER_STYLE = 10
LOCATIONS = ("001", "002", "003")  # main DC, store back-room, outlet: every one feeds every target
COLOURS = ("001", "010", "020", "030", "100", "110", "200", "210", "300", "410", "500", "610")
COLOUR_NAMES = dict(
    zip(
        COLOURS,
        ("Black", "Navy", "Ink", "Slate", "Ivory", "Oat", "Rust", "Clay", "Olive", "Sage", "Rose", "Sky"),
        strict=True,
    )
)
SIZE_RUNS = (("XS", "S", "M", "L", "XL"), ("08", "10", "12", "14", "16"))
GARMENTS = ("Tee", "Shirt", "Dress", "Knit", "Cardigan", "Trouser", "Skirt", "Jacket", "Coat", "Jumpsuit")
FABRICS = ("Linen", "Cotton", "Merino", "Poplin", "Jersey", "Twill", "Cord", "Denim", "Silk", "Wool")
PRICES = np.array([1990, 2490, 2990, 3490, 3990, 4990, 5990, 6990, 7990, 8990, 9990, 12900, 14900])
PACK_DISCOUNT_PERCENT = 10
DISCONTINUED_EVERY = 20  # one garment SKU in twenty is discontinued


@dataclass(frozen=True)
class Catalogue:
    seed: int
    n_components: int
    n_packs: int
    captured_at: datetime

    @property
    def n_skus(self) -> int:
        return self.n_components + self.n_packs

    def _draw(self, stream: str) -> Draw:
        return Draw(self.seed, f"catalogue.{stream}")

    @property
    def _discontinued_slot(self) -> int:
        return self.seed % DISCONTINUED_EVERY

    # --- identities -------------------------------------------------------------------------------
    def style_codes(self, idx: np.ndarray) -> pl.Series:
        return pl.Series(idx // SKUS_PER_STYLE + 100, dtype=pl.Int64).cast(pl.String).str.zfill(5)

    def colour_codes(self, idx: np.ndarray) -> np.ndarray:
        style = idx // SKUS_PER_STYLE
        first = self._draw("colour").bits(style) % np.uint64(len(COLOURS))
        step = 1 + self._draw("colour2").bits(style) % np.uint64(len(COLOURS) - 1)
        second_colourway = (idx // 5) % 2 == 1
        slot = np.where(second_colourway, (first + step) % np.uint64(len(COLOURS)), first)
        return np.asarray(COLOURS)[slot]

    def size_codes(self, idx: np.ndarray) -> np.ndarray:
        numeric = self._draw("size_run").bits(idx // SKUS_PER_STYLE) % np.uint64(2) == 1
        return np.where(numeric, np.asarray(SIZE_RUNS[1])[idx % 5], np.asarray(SIZE_RUNS[0])[idx % 5])

    def pack_styles(self, pack_idx: np.ndarray) -> pl.Series:
        return "P" + pl.Series(pack_idx + 1, dtype=pl.Int64).cast(pl.String).str.zfill(4)

    def skus(self, idx: np.ndarray) -> pl.Series:
        """The SKU of any index, garment or pack."""
        idx = np.asarray(idx, dtype=np.int64)
        is_pack = idx >= self.n_components
        garment = np.where(is_pack, 0, idx)
        frame = pl.DataFrame(
            {
                "style": self.style_codes(garment),
                "colour": self.colour_codes(garment),
                "size": self.size_codes(garment),
                "pack": self.pack_styles(idx - self.n_components),
                "is_pack": is_pack,
            }
        )
        return frame.select(
            pl.when(pl.col("is_pack"))
            .then(pl.col("pack") + "-000-OS")
            .otherwise(pl.concat_str("style", "colour", "size", separator="-"))
            .alias("sku")
        ).to_series()

    def is_active(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        return (idx >= self.n_components) | (idx % DISCONTINUED_EVERY != self._discontinued_slot)

    def active_garments(self, idx: np.ndarray) -> np.ndarray:
        """Map arbitrary indices onto active garment indices (used to pick pack components)."""
        idx = np.asarray(idx, dtype=np.int64) % self.n_components
        return np.where(self.is_active(idx), idx, (idx + 1) % self.n_components)

    # --- prices -----------------------------------------------------------------------------------
    def garment_prices(self, idx: np.ndarray) -> np.ndarray:
        """Retail price in EUR cents, one per style."""
        return self._draw("price").choice(np.asarray(idx) // SKUS_PER_STYLE, PRICES)

    def prices(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        is_pack = idx >= self.n_components
        pack_price = np.zeros(len(idx), dtype=np.int64)
        if is_pack.any():
            packs, back = np.unique(idx[is_pack] - self.n_components, return_inverse=True)
            comp = self.pack_components(packs)
            gross = self._per_pack(comp, self.garment_prices(comp["component_idx"].to_numpy()) * comp["qty"], "sum")
            # a pack sells at a discount, rounded down to 10 cents
            pack_price[is_pack] = (gross * (100 - PACK_DISCOUNT_PERCENT) // 1000 * 10)[back]
        return np.where(is_pack, pack_price, self.garment_prices(np.where(is_pack, 0, idx)))

    # --- packs ------------------------------------------------------------------------------------
    def pack_components(self, pack_idx: np.ndarray) -> pl.DataFrame:
        """pack_idx, component_idx, qty: two or three distinct active garments per pack."""
        pack_idx = np.asarray(pack_idx, dtype=np.int64)
        three = self._draw("pack_size").uniform(pack_idx) < 0.4
        base = self._draw("pack_base").integers(pack_idx, 0, self.n_components - 1)
        rows = []
        for slot in range(3):
            keep = three if slot == 2 else np.ones(len(pack_idx), dtype=bool)
            # components of one pack sit a few styles apart, so they never collide
            component = self.active_garments(base + slot * 3 * SKUS_PER_STYLE)
            qty = np.where(self._draw(f"pack_qty{slot}").uniform(pack_idx) < 0.3, 2, 1)
            rows.append(
                pl.DataFrame({"pack_idx": pack_idx, "component_idx": component, "qty": qty, "slot": slot}).filter(
                    pl.Series(keep)
                )
            )
        return pl.concat(rows).sort("pack_idx", "slot").drop("slot")

    # --- stock ------------------------------------------------------------------------------------
    def erp_stock(self, idx: np.ndarray) -> pl.DataFrame:
        """One row per (garment, location): the ERP's stock buckets; `available` nets never WIP."""
        idx = np.repeat(np.asarray(idx, dtype=np.int64), len(LOCATIONS))
        loc = np.tile(np.arange(len(LOCATIONS)), len(idx) // len(LOCATIONS))
        cell = idx * len(LOCATIONS) + loc
        empty = self._draw("empty").uniform(cell) < 0.15
        on_hand = np.where(empty, 0, self._draw("on_hand").integers(cell, 1, 40) // (1 + loc))
        allocated = (self._draw("allocated").uniform(cell) * (np.minimum(on_hand, 6) + 1)).astype(np.int64)
        safety = self._draw("safety").integers(cell, 0, 2)
        on_order = np.where(self._draw("wip").uniform(cell) < 0.3, self._draw("wip_qty").integers(cell, 1, 30), 0)
        return pl.DataFrame(
            {
                "sku_idx": idx,
                "location": np.asarray(LOCATIONS)[loc],
                "on_hand": on_hand,
                "allocated": allocated,
                "on_order": on_order,
                "safety_stock": safety,
                "available": on_hand - allocated - safety,
            }
        )

    def ats(self, idx: np.ndarray) -> np.ndarray:
        """Available-to-sell of any SKU across all ERP locations (packs: min over components)."""
        idx = np.asarray(idx, dtype=np.int64)
        is_pack = idx >= self.n_components
        result = np.zeros(len(idx), dtype=np.int64)
        garments = idx[~is_pack]
        if len(garments):
            stock = self.erp_stock(garments)
            per_loc = np.maximum(stock["available"].to_numpy(), 0).reshape(-1, len(LOCATIONS))
            result[~is_pack] = per_loc.sum(axis=1)
        if is_pack.any():
            packs, back = np.unique(idx[is_pack] - self.n_components, return_inverse=True)
            comp = self.pack_components(packs)
            sellable = self.ats(comp["component_idx"].to_numpy()) // comp["qty"].to_numpy()
            result[is_pack] = self._per_pack(comp, sellable, "min")[back]
        return result

    @staticmethod
    def _per_pack(components: pl.DataFrame, values: np.ndarray, how: str) -> np.ndarray:
        """Aggregate one value per component row into one per pack, in ascending pack order."""
        grouped = (
            components.select("pack_idx", pl.Series("value", values))
            .group_by("pack_idx")
            .agg(getattr(pl.col("value"), how)())
            .sort("pack_idx")
        )
        return grouped["value"].to_numpy()
