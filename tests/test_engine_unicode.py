"""A name or an email written in another Unicode normal form (NFD: e + combining accent, as macOS tools and
some exports write it) is the same name or email: no customer_master_parity finding, and the profile is
matched by its email."""

from __future__ import annotations

import unicodedata

from tests.audit_helpers import keys, run_audit, snap

CONFIG = {"feeds": [{"source": "bluecherry", "target": "emarsys", "entities": ["customers"]}]}


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def test_a_name_in_another_normal_form_is_the_same_name(tmp_path):
    erp = snap(
        "bluecherry",
        "customers",
        customer_id=["C1", "C2", "C3"],
        email=["leo@example.fr", "zoé@example.fr", "ines@example.fr"],
        first_name=["Léo", "Zoé", "Inès"],
    )
    # C1 stores the ERP id; C2 is matched by its email, written in NFD; C3's name really differs.
    emarsys = snap(
        "emarsys",
        "customers",
        customer_id=["E1", "E2", "E3"],
        erp_customer_id=["C1", None, "C3"],
        email=["leo@example.fr", nfd("Zoé@example.fr"), "ines@example.fr"],
        first_name=[nfd("Léo"), nfd("Zoé"), "Agnès"],
    )
    found = run_audit(tmp_path, [erp, emarsys], CONFIG, ["customer_master_parity"])
    assert keys(found, "customer_master_parity") == {("emarsys", "C3", "first_name")}
