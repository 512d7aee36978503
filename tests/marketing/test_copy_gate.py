"""The grounding gate of marketing copy: each rule passes what the catalogue and the campaign
state and fails what they do not, with a reason that names the rule and the offending value."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ml.marketing.copywriting.gate import Catalogue, Offer, check, rule
from ml.marketing.copywriting.lm import product_facts

pytestmark = pytest.mark.unit


def _items() -> pd.DataFrame:
    rows = [
        (
            "I1",
            "Bramble Chelsea boots, red",
            "Chelsea boots for the weekend.",
            "Bramble",
            200.0,
            "Women > Shoes > Boots",
            "red",
            "leather",
        ),
        (
            "I2",
            "Kestrel Ridge tent",
            "Two-person tent. By Kestrel.",
            "Kestrel",
            350.0,
            "Sports > Outdoor > Tents",
            "green",
            "nylon",
        ),
        ("I3", "Larkspur chef's knife", "Sharp knife.", "Larkspur", 40.0, "Home > Kitchen > Knives", "grey", "steel"),
        ("I4", "Basico paring knife", "Small knife.", "Basico", 12.5, "Home > Kitchen > Knives", "black", "steel"),
        (
            "I5",
            "Cobalt & Co bread knife",
            "Long knife.",
            "Cobalt & Co",
            25.0,
            "Home > Kitchen > Knives",
            "grey",
            "steel",
        ),
        (
            "I6",
            "Everyday Co hiking boots",
            "For the hills.",
            "Everyday Co",
            120.0,
            "Men > Shoes > Hiking Boots",
            "brown",
            "leather",
        ),
    ]
    cols = ["item_id", "title", "description", "brand", "price", "category_path", "colour", "material"]
    df = pd.DataFrame(rows, columns=cols)
    df["attributes"] = [
        json.dumps({"color": c, "material": m}) for c, m in zip(df["colour"], df["material"], strict=True)
    ]
    return df.drop(columns=["colour", "material"])


@pytest.fixture(scope="module")
def catalogue() -> tuple[pd.DataFrame, Catalogue]:
    facts = product_facts(_items())
    return facts, Catalogue.from_facts(facts)


def _offer(facts: pd.DataFrame, item_id: str, discount: float | None = None) -> Offer:
    return Offer(next(facts[facts["item_id"] == item_id].itertuples(index=False)), discount)


def _rules(reasons: list[str]) -> set[str]:
    return {rule(r) for r in reasons}


def test_a_variant_of_catalogue_facts_passes(catalogue):
    facts, cat = catalogue
    offer = _offer(facts, "I1", 15)
    text = (
        "Autumn sale: Bramble Chelsea boots, red, now 170.00 instead of 200.00 (15% off). Red leather boots by Bramble."
    )
    assert offer.sale_price == 170.0
    assert check(text, offer, cat, ["limited stock"]) == []


@pytest.mark.parametrize(
    ("body", "expected", "detail"),
    [
        ("Limited STOCK, hurry.", "banned", "limited stock"),
        ("Also see Kestrel Ridge tent.", "product", "I2"),
        ("Made by Kestrel.", "brand", "kestrel"),
        ("A Cobalt & Co classic.", "brand", "cobalt & co"),
        ("Pack it with your tent.", "category", "Tents"),
        ("Sharp as a knife.", "category", "'knife' names 'Knives'"),  # a title word of one leaf only
        ("Perfect with hiking boots.", "category", "Hiking Boots"),
        ("Now in green.", "attribute", "color 'green'"),
        ("Soft nylon upper.", "attribute", "material 'nylon'"),
        ("Yours for 99.99.", "price", "99.99"),
        ("Only $150 today.", "price", "150.00"),
        ("Just 180 eur.", "price", "180.00"),
        ("Save 20% today.", "discount", "20%"),
        ("Fits sizes 36 to 42.", "number", "36"),
        ("Made for for the weekend.", "repeated", "'for for'"),
        ("Red boots. this one for work.", "form", "'this one for work.'"),  # a sentence in lower case
        ("Red boots made of", "form", "stops mid-sentence"),  # cut off by the token limit
        ("Red boots. : Made of leather.", "form", "starts with punctuation"),
        ("Embroidered- boots.", "form", "'Embroidered-'"),  # a word the model left unfinished
    ],
)
def test_each_rule_fails_what_the_catalogue_does_not_state(catalogue, body, expected, detail):
    facts, cat = catalogue
    offer = _offer(facts, "I1", 15)
    reasons = check(f"Bramble Chelsea boots, red. {body}", offer, cat, ["limited stock"])
    assert expected in _rules(reasons), reasons
    assert any(detail in r for r in reasons if rule(r) == expected), reasons


def test_form_reads_sentences_not_prices_or_names(catalogue):
    facts, cat = catalogue
    offer = _offer(facts, "I1", 15)
    lead = "Autumn sale: Bramble Chelsea boots, red, now 170.00 instead of 200.00 (15% off)."
    # the point of a price ends no sentence; a digit or a name in mixed case may start one
    for body in ("Red boots for the weekend!", "15% off red boots? Yes.", 'Red boots. "Boots" (and more.)'):
        assert check(f"{lead} {body}", offer, cat, []) == [], body
    # "eBay" is no word of this catalogue: the word rule refuses it unless the team allows it
    assert _rules(check(f"{lead} eBay's favourite red boots.", offer, cat, [])) == {"word"}
    allowing = Catalogue.from_facts(facts, ["eBay"])
    assert check(f"{lead} eBay's favourite red boots.", offer, allowing, []) == []
    assert _rules(check(f"{lead} (red) boots.", offer, cat, [])) == {"form"}


def test_form_takes_the_products_own_title_and_phrasing_as_written():
    # a title with a point inside and a description with an abbreviation: catalogue facts, so
    # neither they nor the headline that quotes the title fail the form rule
    items = _items()
    items.loc[len(items)] = [
        "I7",
        "St. john's wort capsules",
        "Herbal capsules, approx. one a day. A low- and high-dose pack.",
        "Herbo",
        9.5,
        "Health > Remedies > Herbs",
        json.dumps({"color": "green", "material": "gelatin"}),
    ]
    facts = product_facts(items)
    cat, offer = Catalogue.from_facts(facts), _offer(facts, "I7")
    lead = "Spring sale: St. john's wort capsules, 9.50."
    assert check(f"{lead} Take approx. one a day. A low- and high-dose pack.", offer, cat, []) == []
    assert _rules(check(f"{lead} Take it. one a day.", offer, cat, [])) == {"form"}  # not the catalogue's
    assert _rules(check(f"{lead} A low- price.", offer, cat, [])) == set()  # "low-" as the catalogue writes it
    assert _rules(check(f"{lead} A cheap- price.", offer, cat, [])) == {"form"}
    # a brand written with points is a name too
    items.loc[len(items) - 1, "brand"] = "e.l.f. labs"
    facts = product_facts(items)
    offer = _offer(facts, "I7")
    assert check(f"{lead[:-1]} by e.l.f. labs, 9.50. Herbal capsules.", offer, Catalogue.from_facts(facts), []) == []


def test_the_shops_own_descriptions_pass_the_form_rule():
    # the generator writes catalogue prose the copy model learns from: the rule must not refuse it
    from ml.marketing.copywriting.gate import _form
    from ml.shop.generate import generate

    items = generate("tiny", seed=3)["items"]
    failing = [d for d in items["description"] if _form(d)]
    assert len(items) > 100 and not failing, failing[:5]


def test_the_word_rule_refuses_made_up_and_glued_words(catalogue):
    facts, cat = catalogue
    offer = _offer(facts, "I1")
    lead = "Bramble Chelsea boots, red, 200.00."
    # what the small model wrote on the default shop: made-up words, two words glued into one
    for body, word in (("Forpely finished: this one for the gym.", "forpely"), ("Warm andimpact boots.", "andimpact")):
        assert check(f"{lead} {body}", offer, cat, []) == [
            f"word: '{word}' is no word of the catalogue, the campaign or the dictionary"
        ]
    assert _rules(check(f"{lead} Retro finish: g out.", offer, cat, [])) == {"word"}  # no one-letter word but a, i
    # dictionary words, the catalogue's own words (names included), plurals and possessives pass
    body = "A warm pair for rainy days: Bramble's favourites, and I love the leather."
    assert check(f"{lead} {body}", offer, cat, []) == []
    # a word with accents is one word: known when the catalogue writes it, refused whole when not
    assert check(f"{lead} Crème boots.", offer, Catalogue.from_facts(facts, ["crème"]), []) == []
    assert check(f"{lead} Crème boots.", offer, cat, []) == [
        "word: 'crème' is no word of the catalogue, the campaign or the dictionary"
    ]
    # the campaign's title is the spec's own wording
    assert _rules(check(f"Snowfest sale: {lead}", offer, cat, [])) == {"word"}
    titled = Offer(offer.product, None, "Snowfest sale")
    assert check(f"Snowfest sale: {lead}", titled, cat, []) == []


def test_the_dictionary_is_minilms_whole_words():
    from ml.marketing.copywriting.gate import dictionary

    words = dictionary()
    assert len(words) > 20_000 and {"weekend", "leather", "rainy", "a", "i"} <= words
    assert not {"g", "b", "forpely", "##ing"} & words


def test_whole_sentences_drops_a_cut_off_tail():
    from ml.marketing.copywriting.gate import whole_sentences

    assert whole_sentences("Red boots, 12.50. Made of") == "Red boots, 12.50."
    assert whole_sentences("Red boots! Made of wool.") == "Red boots! Made of wool."
    assert whole_sentences("Made of") == "Made of"  # no whole sentence: kept, and the gate refuses it


def test_no_discount_may_be_stated_without_one(catalogue):
    facts, cat = catalogue
    reasons = check("Bramble Chelsea boots, red. 10% off.", _offer(facts, "I1"), cat, [])
    assert reasons == ["discount: 10% offered, but the campaign gives no discount"]
    assert check("Bramble Chelsea boots, red, now 170.00.", _offer(facts, "I1"), cat, []) == [
        "price: 170.00 is not the catalogue price 200.00"
    ]


def test_the_products_own_words_and_numbers_are_facts(catalogue):
    facts, cat = catalogue
    # "boots" is Boots' name and a word of Hiking Boots' title: the hiking boots may use it
    assert check("Everyday Co hiking boots. Boots for the hills, 120.00.", _offer(facts, "I6"), cat, []) == []
    # the tent's description says "Two-person": its number is a fact, another number is not
    assert check("Kestrel Ridge tent. Two-person shelter.", _offer(facts, "I2"), cat, []) == []
    assert _rules(check("Kestrel Ridge tent. Three-person, 4 doors.", _offer(facts, "I2"), cat, [])) == {"number"}


def test_the_title_is_taken_out_before_names_are_read(catalogue):
    facts, cat = catalogue
    # the title names the brand and the leaf: quoting it is never "another product" or "a category"
    offer = _offer(facts, "I3")
    assert check("Larkspur chef's knife, 40.00. A knife by Larkspur.", offer, cat, []) == []
    # but another knife's full title is another product
    reasons = check("Larkspur chef's knife. Like our Basico paring knife.", offer, cat, [])
    assert "product" in _rules(reasons) and "brand" in _rules(reasons)


def test_catalogue_words_are_learnt_from_titles(catalogue):
    _, cat = catalogue
    assert cat.categories["knife"][0] == "Knives"  # three knife titles, all in Knives
    assert cat.categories["tent"][0] == "Tents" and cat.categories["tents"][0] == "Tents"
    assert "bramble" not in cat.categories  # one item only: not a category word
    assert set(cat.attributes) == {"color", "material"} and "leather" in cat.attributes["material"]


def test_facts_survive_missing_and_malformed_attributes():
    items = _items()
    items.loc[0, "attributes"] = "not json"
    items.loc[1, "attributes"] = None
    items.loc[2, "attributes"] = json.dumps(["a", "list"])
    items.loc[3, "price"] = None  # nothing true can be said without a price: left out
    facts = product_facts(items)
    assert list(facts["item_id"]) == ["I1", "I2", "I3", "I5", "I6"]
    assert facts["attributes"].iloc[:3].tolist() == [{}, {}, {}]
    assert check("Bramble Chelsea boots, red.", _offer(facts, "I1"), Catalogue.from_facts(facts), []) == []
