"""generate_copy on a real warehouse: the tiny shop ingested, dbt-built and its audiences
published; copy per audience x live campaign into versioned ``serving.copy_<audience>`` tables
with every candidate's verdict in ``ml.copy_candidates``; reruns idempotent."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

CHEAP_LM = {"steps": 40, "batch_size": 8}


@pytest.fixture(scope="module")
def shop(tiny_shop, tmp_path_factory):
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.tasks.marketing import generate_copy, publish_audiences
    from ml.warehouse import Warehouse

    root = tmp_path_factory.mktemp("copy")
    wh = Warehouse(f"duckdb:///{root / 'warehouse.duckdb'}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
        mp.setenv("INTERESTFLOW_ARTIFACTS", str(root / "artifacts"))
        mp.delenv("INTERESTFLOW_COPY_MODEL", raising=False)
        ingest_paths([tiny_shop], wh, gate=False)
        build(wh, target_path=root / "dbt-target")
        audiences = publish_audiences(run_id="r1")
        report = generate_copy(run_id="r1", lm_settings=CHEAP_LM)
        yield {"wh": wh, "root": root, "audiences": audiences, "report": report, "mp": mp}


def _copy(wh, audience: str) -> pd.DataFrame:
    return wh.query(f"select * from serving.copy_{audience}_current order by campaign, variant")


def test_every_published_audience_gets_each_live_campaigns_variants(shop):
    from ml.marketing.campaigns import load_campaigns

    report, wh = shop["report"], shop["wh"]
    campaigns = load_campaigns()
    # the newest event is 2026-10-30: the outdoor sale is on, the home week starts within 7 days
    assert report["campaigns"] == ["cosy_home_week", "winter_outdoor_sale"]
    published = {n for n, a in shop["audiences"]["audiences"].items() if a["size"] > 0}
    assert published and set(report["audiences"]) == published
    for name in published:
        copy = _copy(wh, name)
        expected = sum(campaigns[c].copy_variants for c in report["campaigns"])
        assert len(copy) == expected, name
        assert (
            copy.groupby("campaign")["variant"].apply(list) == pd.Series({c: [0, 1, 2] for c in report["campaigns"]})
        ).all()
        assert set(copy["source"]) <= {"model", "template"} and (copy["run_id"] == "r1").all()
        sale = copy[copy["campaign"] == "winter_outdoor_sale"]
        assert (sale["discount_percent"] == 15).all()
        assert (sale["campaign_price"] - (sale["price"] * 0.85).round(2)).abs().max() < 1e-9
        assert sale["text"].str.contains("(15% off)", regex=False).all()
        assert copy.loc[copy["campaign"] == "cosy_home_week", "campaign_price"].isna().all()


def test_published_copy_passes_the_gate_again_and_names_only_boosted_products(shop):
    from ml.marketing.campaigns import load_campaigns
    from ml.marketing.copywriting.gate import Catalogue, Offer, check
    from ml.marketing.copywriting.lm import product_facts
    from ml.marketing.copywriting.publish import ITEMS_SQL, item_tags
    from ml.marketing.defaults import DEFAULT_BANNED_PHRASES

    wh = shop["wh"]
    facts = product_facts(wh.query(ITEMS_SQL)).set_index("item_id", drop=False)
    catalogue = Catalogue.from_facts(facts.reset_index(drop=True))
    tags = item_tags(wh)
    campaigns = load_campaigns()
    for name in shop["report"]["audiences"]:
        for row in _copy(wh, name).itertuples():
            campaign = campaigns[row.campaign]
            boosted = set(tags.loc[tags["tag"].isin(campaign.boost_tags), "item_id"])
            assert row.item_id in boosted
            offer = Offer(
                next(facts.loc[[row.item_id]].itertuples(index=False)), campaign.discount_percent, campaign.title
            )
            assert check(row.text, offer, catalogue, DEFAULT_BANNED_PHRASES) == [], row.text


def test_the_report_matches_the_candidate_log(shop):
    wh, report = shop["wh"], shop["report"]
    cands = wh.query("select * from ml.copy_candidates where run_id = 'r1'")
    model = cands[cands["source"] == "model"]
    assert report["candidates"] == len(model) and report["passed"] == int(model["passed"].sum())
    assert report["pass_rate"] == round(model["passed"].mean(), 4)
    failed = model[~model["passed"]]
    assert sum(report["reasons"].values()) >= len(failed)
    assert all(json.loads(r) for r in failed["reasons"])
    # one published text per (audience, campaign, variant), the same as the serving tables hold
    pub = cands[cands["published"]]
    assert not pub.duplicated(["audience", "campaign", "variant"]).any()
    for name in report["audiences"]:
        served = _copy(wh, name)
        mine = pub[pub["audience"] == name].sort_values(["campaign", "variant"])
        assert mine["text"].tolist() == served["text"].tolist()


def test_a_rerun_writes_the_same_rows_once(shop):
    from ml.tasks.marketing import generate_copy

    wh = shop["wh"]
    name = sorted(shop["report"]["audiences"])[0]
    before = _copy(wh, name)
    n_before = int(wh.query("select count(*) as n from ml.copy_candidates")["n"].iloc[0])
    again = generate_copy(run_id="r1", lm_settings=CHEAP_LM)
    assert again["model"] == shop["report"]["model"]  # the trained model is reused
    assert int(wh.query("select count(*) as n from ml.copy_candidates")["n"].iloc[0]) == n_before
    cols = ["campaign", "variant", "item_id", "text", "source"]
    pd.testing.assert_frame_equal(_copy(wh, name)[cols], before[cols])


def test_lead_days_model_folder_and_audience_selection(shop, tmp_path):
    import shutil

    from ml.tasks.marketing import generate_copy

    name = sorted(shop["report"]["audiences"])[0]
    folder = tmp_path / "team-model"
    shutil.copytree(shop["report"]["model"], folder)
    out = generate_copy(run_id="r2", names=[name], model=str(folder), lead_days=0, attempts=2)
    assert out["model"] == str(folder) and out["campaigns"] == ["winter_outdoor_sale"]
    assert set(out["audiences"]) == {name} and out["candidates"] == 3 * 2
    assert set(_copy(shop["wh"], name)["campaign"]) == {"winter_outdoor_sale"}
    with pytest.raises(ValueError, match="unknown audiences"):
        generate_copy(run_id="r3", names=["nobody"])


def _reasons(wh, run_id: str) -> list[str]:
    texts = wh.query(f"select reasons from ml.copy_candidates where run_id = '{run_id}' and source = 'model'")
    return sorted(r for text in texts["reasons"] for r in json.loads(text))


def test_allowed_words_pass_the_word_rule(shop):
    from ml.tasks.marketing import generate_copy

    wh = shop["wh"]
    # a model trained for 3 steps glues byte pieces into words no dictionary knows
    raw = {"steps": 3, "batch_size": 8}
    generate_copy(run_id="r5", lm_settings=raw)
    reasons = _reasons(wh, "r5")
    refused = sorted({r.split("'")[1] for r in reasons if r.startswith("word: ")})
    assert refused, reasons
    # the same seeds write the same candidates; allowing those words lifts exactly their refusals
    out = generate_copy(run_id="r6", lm_settings=raw, allowed_words=refused)
    assert _reasons(wh, "r6") == [r for r in reasons if not r.startswith("word: ")]
    assert "word" not in out["reasons"]


def test_no_live_campaign_writes_nothing(shop, monkeypatch):
    from ml.marketing import campaigns as spec
    from ml.tasks.marketing import generate_copy

    monkeypatch.setattr(spec, "load_campaigns", dict)
    out = generate_copy(run_id="r4", lm_settings=CHEAP_LM)
    assert out["campaigns"] == [] and out["audiences"] == {} and "no campaign is active" in out["skipped"]["*"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "copy attempts must be a whole number"),
        ({"banned_phrases": "free"}, "banned phrases must be a list of strings"),
        ({"allowed_words": "cosy"}, "allowed words must be a list of strings"),
        ({"lm_settings": {"stepz": 3}}, r"unknown copy_lm settings \['stepz'\]"),
        ({"lm_settings": {"max_epochs": 0}}, r"max_epochs > 0, got .*max_epochs=0"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(shop, kwargs, message):
    from ml.tasks.marketing import generate_copy

    before = int(shop["wh"].query("select count(*) as n from ml.copy_candidates")["n"].iloc[0])
    with pytest.raises(ValueError, match=message):
        generate_copy(run_id="bad", **kwargs)
    assert int(shop["wh"].query("select count(*) as n from ml.copy_candidates")["n"].iloc[0]) == before


def test_a_model_folder_that_is_not_a_model_is_named(shop, tmp_path):
    from ml.tasks.marketing import generate_copy

    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        generate_copy(run_id="bad", model=str(tmp_path))
