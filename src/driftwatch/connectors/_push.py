"""Helpers the platforms' push sides share."""

from __future__ import annotations

import polars as pl

from driftwatch.push import Action


def profiles_of(action: Action, profiles: pl.DataFrame) -> pl.DataFrame:
    """A platform's profiles (canonical customers) of the action's ERP customer: those storing its id, else
    those carrying its email, so a profile the platform created on its own is repaired, not duplicated."""
    by_id = profiles.filter(pl.col("erp_customer_id") == action.key)
    email = (action.truth.get("email") or "").strip().lower()
    if by_id.height or not email:
        return by_id
    return profiles.filter(
        pl.col("erp_customer_id").is_null() & (pl.col("email").str.strip_chars().str.to_lowercase() == email)
    )
