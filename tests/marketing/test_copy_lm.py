"""The copy model: the small causal LM trained on catalogue text, saved and loaded like any
Hugging Face model, seeded sampling, constrained decoding, and the variants it writes through
the grounding gate (with the template standing in when no candidate passes)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime

import pandas as pd
import pytest

from ml.marketing.campaigns import Campaign
from ml.marketing.copywriting import lm
from ml.marketing.copywriting.gate import Catalogue, Offer, check
from ml.marketing.copywriting.variants import headline, template, write_copy

pytestmark = pytest.mark.slow

CHEAP = lm.LMSettings(steps=40, batch_size=8, width=64)


def _catalogue(description: str = "") -> pd.DataFrame:
    leaves = [("Tents", "tent", "nylon"), ("Lamps", "lamp", "glass"), ("Vases", "vase", "ceramic")]
    rows = []
    for n in range(30):
        leaf, noun, material = leaves[n % 3]
        brand = ["Bramble", "Kestrel", "Larkspur"][n % 3 if n % 2 else (n + 1) % 3]
        text = description or f"A {noun} for the weekend. Made of {material}."
        attributes = json.dumps({"color": ["green", "white"][n % 2], "material": material})
        rows.append((f"I{n:03d}", f"{brand} {noun} {n}", text, brand, 10.0 + n, f"Home > Things > {leaf}", attributes))
    return pd.DataFrame(
        rows, columns=["item_id", "title", "description", "brand", "price", "category_path", "attributes"]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[pd.DataFrame, lm.Writer]:
    root = tmp_path_factory.mktemp("copy_lm")
    items = _catalogue()
    return items, lm.load(lm.catalogue_model(items, root, CHEAP))


def _campaign(**extra) -> Campaign:
    return Campaign(
        name="spring_sale", start=datetime(2026, 3, 1), end=datetime(2026, 3, 8), boost_tags=["cat:x"], **extra
    )


def test_the_catalogue_model_is_trained_once_and_reused(tmp_path, monkeypatch):
    items = _catalogue()
    first = lm.catalogue_model(items, tmp_path, CHEAP)
    report = json.loads((first / "training.json").read_text())
    # 40 steps of 8 would pass over the 30 documents 10.7 times: max_epochs (10) stops it at 38
    assert report["documents"] == 30 and report["settings"]["steps"] == 40 and report["steps"] == 38
    assert report["last_loss"] < report["first_loss"]
    assert {"config.json", "tokenizer.json"} <= {p.name for p in first.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch folder left

    def no_training(*args, **kwargs):
        raise AssertionError("an unchanged catalogue must not train again")

    monkeypatch.setattr(lm, "train", no_training)
    assert lm.catalogue_model(items, tmp_path, CHEAP) == first
    changed = items.assign(price=items["price"] + 1)
    with pytest.raises(AssertionError, match="must not train"):  # a new catalogue is a new model
        lm.catalogue_model(changed, tmp_path, CHEAP)


def test_a_catalogue_without_products_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no product with a title and a price"):
        lm.catalogue_model(_catalogue().assign(price=None), tmp_path, CHEAP)


def test_loading_reads_a_local_folder_only(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        lm.load(tmp_path)


def test_sampling_is_seeded_and_cut_at_prompt_syntax(trained):
    items, writer = trained
    facts = lm.product_facts(items)
    text = lm.prompt(facts.iloc[0])
    assert text.startswith("Product: ") and "| Material: nylon" in text and text.endswith("\nCopy:")
    a = lm.write(writer, text, 3, seed=5, max_new_tokens=20)
    assert a == lm.write(writer, text, 3, seed=5, max_new_tokens=20)
    assert len(a) == 3 and all("\n" not in t and "Product:" not in t and "|" not in t for t in a)
    # a continuation the token limit cuts keeps its whole sentences only (none: all of it)
    cut = lm.write(writer, text, 8, seed=2, max_new_tokens=12)
    assert all(t.endswith((".", "!", "?")) or not re.search(r"[.!?](\s|$)", t) for t in cut), cut


def test_avoided_words_are_never_written(trained):
    items, writer = trained
    facts = lm.product_facts(items)
    text = lm.prompt(facts.iloc[0])
    free = " ".join(lm.write(writer, text, 8, seed=1, max_new_tokens=24)).lower()
    banned = [w for w in ("weekend", "made", "nylon") if w in free]
    assert banned, f"the model should write some catalogue words: {free!r}"
    kept = " ".join(lm.write(writer, text, 8, seed=1, max_new_tokens=24, avoid=banned)).lower()
    assert not [w for w in banned if re.search(rf"\b{w}\b", kept)], kept


def test_variants_pass_the_gate_or_fall_back_to_the_template(trained):
    items, writer = trained
    facts = lm.product_facts(items)
    catalogue = Catalogue.from_facts(facts)
    campaign = _campaign(discount_percent=20.0, copy_variants=4)
    offers = [Offer(p, 20.0) for p in facts.head(2).itertuples(index=False)]
    written = write_copy(writer, campaign, "fans", offers, catalogue, [], attempts=3)
    copy, cands = written.copy, written.candidates
    assert list(copy["variant"]) == [0, 1, 2, 3]  # every slot has one published text
    assert list(copy["item_id"]) == ["I000", "I001", "I000", "I001"]  # products cycle over slots
    assert (copy["campaign_arm"] == "treatment").all() and (copy["discount_percent"] == 20.0).all()
    for row in copy.itertuples():
        offer = offers[row.variant % 2]
        assert row.text.startswith(headline(campaign, offer)) and check(row.text, offer, catalogue, []) == []
    assert (cands.groupby("variant")["published"].sum() == 1).all()
    model_rows = cands[cands["source"] == "model"]
    assert (model_rows.groupby("variant").size() == 3).all()
    assert all(json.loads(r) == [] for r in cands.loc[cands["passed"], "reasons"])
    assert all(json.loads(r) for r in cands.loc[~cands["passed"], "reasons"])


def test_when_no_candidate_passes_the_template_is_published(tmp_path):
    # every description says "Limited stock." first: the model learns to say it, the gate bans it
    items = _catalogue("Limited stock. Limited stock.")
    writer = lm.load(
        lm.catalogue_model(items, tmp_path, lm.LMSettings(steps=60, batch_size=8, width=64, max_epochs=16))
    )
    facts = lm.product_facts(items)
    catalogue = Catalogue.from_facts(facts)
    campaign = _campaign(copy_variants=2)
    offers = [Offer(p) for p in facts.head(2).itertuples(index=False)]
    written = write_copy(writer, campaign, "fans", offers, catalogue, ["limited stock"], attempts=3)
    assert list(written.copy["source"]) == ["template", "template"]
    assert list(written.copy["text"]) == [template(campaign, o) for o in offers]
    model_rows = written.candidates[written.candidates["source"] == "model"]
    assert len(model_rows) == 6 and not model_rows["passed"].any() and not model_rows["published"].any()
    assert all("banned: 'limited stock'" in json.loads(r) for r in model_rows["reasons"])
    # a template that fails too (the brand is banned) leaves the slot empty, its reason recorded
    brand = offers[0].product.brand
    none = write_copy(writer, _campaign(copy_variants=1), "fans", offers[:1], catalogue, [brand], attempts=2)
    assert none.copy.empty and not none.candidates["published"].any()
    assert none.candidates["source"].tolist() == ["model", "model", "template"]


def test_a_folder_copied_elsewhere_loads_the_same(trained, tmp_path):
    # the path a team with a larger model takes: any save_pretrained folder
    items, writer = trained
    copy = tmp_path / "my-model"
    shutil.copytree(writer.name, copy)
    other = lm.load(copy)
    text = lm.prompt(lm.product_facts(items).iloc[1])
    assert lm.write(other, text, 2, seed=3) == lm.write(writer, text, 2, seed=3)
