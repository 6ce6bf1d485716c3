"""The risk core's results on 1,000 synthetic admissions are exactly those of bench/risk_golden.json.

A change of any fact, LACE, HOSPITAL, score, priority or reason text changes the digest: when the
change is meant (a new rule, a reworded reason), re-save with `bench/risk.py --quick --save-golden`
and say so in the commit; when it is not, this test is where it shows.
"""

from __future__ import annotations

import json
import runpy
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from discharge_bridge.risk import loading
from discharge_bridge.risk.mapping import DEFAULT_MAPPINGS_DIR

BENCH = Path(__file__).resolve().parents[2] / "bench"


@cache
def _bench() -> dict[str, Any]:
    return runpy.run_path(str(BENCH / "risk.py"), run_name="bench_risk")


@pytest.mark.parametrize("key", ["default:1000", "default:1000:hospital+screenings"])
def test_the_risk_core_gives_the_golden_results(key: str) -> None:
    bench = _bench()
    golden = json.loads((BENCH / "risk_golden.json").read_text())
    records = bench["build_records"](1000)
    mapping = loading.mapping("default", DEFAULT_MAPPINGS_DIR)
    rules = loading.rule_set(DEFAULT_MAPPINGS_DIR)
    if key.endswith("hospital+screenings"):
        results = bench["held_out"](records, mapping, rules)
    else:
        results = bench["run"](records, mapping, rules)[1]
    assert bench["digest"](results) == golden[key]
