"""The suite files: readable YAML that maps onto real GX expectations and real mart columns."""

from __future__ import annotations

import pytest
import yaml

from ml import config
from ml.quality.gates import gate_params
from ml.quality.suite import SUITES_DIR, SuiteSpec, build_expectation, substitute

pytestmark = pytest.mark.unit

GATES = sorted(p.stem for p in SUITES_DIR.glob("*.yml"))


def test_every_pipeline_gate_has_a_suite_file():
    assert set(GATES) == {"landing_events", "landing_items", "landing_users", "staged_events", "marts", "prepublish"}


@pytest.mark.parametrize("gate", GATES)
def test_suite_builds_gx_expectations(gate):
    suite = SuiteSpec.load(gate)
    assert suite.gate == gate and suite.description and suite.frames
    params = gate_params(k=10)
    for frame in suite.frames.values():
        assert frame.expectations, frame.name
        for name, kwargs in frame.expectations:
            exp = build_expectation(name, kwargs, params)
            assert type(exp).__module__.startswith("great_expectations"), name
            assert exp.meta["severity"] in ("critical", "warning")


def _mart_columns() -> dict[str, set[str]]:
    out = {}
    for path in (config.DBT_DIR / "models" / "marts").glob("_*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            out[model["name"]] = {c["name"] for c in model.get("columns", [])}
    return out


def test_marts_suite_names_only_columns_the_marts_declare():
    marts = _mart_columns()
    suite = SuiteSpec.load("marts")
    for name, frame in suite.frames.items():
        used = set(frame.columns or ()) | set(frame.id_columns)
        used |= {kw["column"] for _, kw in frame.expectations if "column" in kw}
        used |= {c.column for c in frame.drift}
        assert used <= marts[name], (name, used - marts[name])


def test_parameters_are_substituted_and_a_missing_one_is_named():
    assert substitute({"max_value": "$price_cap", "value_set": ["$k"]}, {"price_cap": 5, "k": 3}) == {
        "max_value": 5,
        "value_set": [3],
    }
    with pytest.raises(KeyError, match=r"\$k was not given"):
        substitute("$k", {})


def test_a_malformed_suite_is_rejected_with_its_file(tmp_path):
    bad = tmp_path / "oops.yml"
    bad.write_text("gate: oops\nframes:\n  t:\n    expectations:\n      - {a: {}, b: {}}\n")
    with pytest.raises(ValueError, match=r"oops\.yml"):
        SuiteSpec.load("oops", tmp_path)
    drift = tmp_path / "drifty.yml"
    drift.write_text(
        "gate: drifty\nframes:\n  t:\n    expectations: []\n    drift: {columns: [{column: x, kind: wobbly, max_kl: 1}]}\n"
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        SuiteSpec.load("drifty", tmp_path)
