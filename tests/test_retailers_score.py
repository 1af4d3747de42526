"""The measure the demo's answer key cannot give: retailers of other shapes, generated with their own answer
keys and clean twins, audited from their file drops and through the real connectors (loopback simulators
serving the same records). Every injected drift is found and nothing else; a clean twin has no finding."""

from __future__ import annotations

import pytest

from driftwatch.demo.retailers import MODES, RETAILERS, generate
from driftwatch.demo.retailers.score import measure


@pytest.mark.parametrize("drift", [True, False], ids=["drifted", "clean_twin"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(RETAILERS))
def test_every_injected_drift_is_found_and_nothing_else(name, mode, drift, tmp_path):
    generated = generate(name, tmp_path / "retailer", drift=drift, mode=mode)
    result = measure(generated, tmp_path / "work")
    report = f"\n{result.table()}\n{result.differences()}"
    assert result.exact, report
    assert result.quarantined == 0, report
    assert result.expected > 30 if drift else result.found + result.extra == 0, report
