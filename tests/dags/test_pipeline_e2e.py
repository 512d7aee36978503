"""The whole platform end to end: four real DAG runs on the tiny shop."""

import pytest

pytestmark = [pytest.mark.dags, pytest.mark.slow]


def test_all_dag_runs_succeed(pipeline_runs):
    for dag_id, run in pipeline_runs.items():
        assert "success" in str(run.state), dag_id


def test_published_table_is_complete_and_sane(pipeline_runs):
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    recs = wh.query("select * from serving.recommendations_current")
    active = set(wh.query("select distinct user_id from marts.interaction_events")["user_id"])
    bought = wh.query("select distinct user_id, item_id from marts.interaction_events where event_type = 'purchase'")
    assert set(recs["user_id"]) == active
    per_user = recs.groupby("user_id")
    assert (per_user["item_id"].nunique() == 10).all()
    assert (per_user["rank"].apply(lambda r: sorted(r) == list(range(1, 11)))).all()
    for _, g in per_user:
        scores = g.sort_values("rank")["score"].to_numpy()
        assert (scores[:-1] >= scores[1:]).all()
    assert recs.merge(bought, on=["user_id", "item_id"]).empty
    assert recs["reason"].str.len().gt(0).all()


def test_registry_recorded_versions_and_a_champion(pipeline_runs):
    from ml.registry import Registry

    reg = Registry()
    versions = reg.versions("recommender")
    run_id = pipeline_runs["retrain_models"].run_id
    mine = versions[versions["run_id"] == run_id]
    assert set(mine["model_name"]) == {"popularity", "item_knn"}
    assert mine["snapshot_id"].str.startswith("snap-").all()
    assert mine["git_sha"].str.len().gt(0).all()
    assert (mine["artifact_bytes"] > 0).all()
    champ = reg.champion("recommender")
    assert champ is not None and champ["model_name"] == "item_knn"


def test_rerunning_publish_for_the_same_run_gives_identical_rows(pipeline_runs):
    from ml.tasks.publishing import publish_recommendations
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    run_id = pipeline_runs["publish_recommendations"].run_id
    before = wh.query("select user_id, rank, item_id, score from serving.recommendations_current order by 1, 2")
    again = publish_recommendations(run_id=run_id)
    after = wh.query("select user_id, rank, item_id, score from serving.recommendations_current order by 1, 2")
    assert again["rows"] == len(before)
    assert before.equals(after)


def test_demo_summary_reports_gates_models_and_the_published_table(pipeline_runs):
    from ml.demo import collect_summary, render

    summary = collect_summary({d: r.run_id for d, r in pipeline_runs.items()})
    gates = {g["gate"]: g for g in summary["quality_gates"]}
    # the good tiny shop passes every gate it went through, and each gate checked something
    assert gates and all(g["passed"] and g["n_expectations"] > 0 for g in gates.values())
    assert summary["published"]["rows"] > 0 and summary["models"]
    text = render(summary)
    assert "Data-quality gates" in text and all(name in text for name in gates)
    assert summary["published"]["table"] in text


def test_build_features_reads_every_review_and_the_item_mart_carries_its_sentiment(pipeline_runs):
    import numpy as np

    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    staged = wh.query("select event_id from staging.stg_shop__events where event_type = 'review'")
    scored = wh.query("select item_id, sentiment, label from ml.review_sentiment")
    assert len(scored) == len(staged) > 0
    items = wh.query("select item_id, n_reviews, n_reviews_scored, review_sentiment from marts.item_features")
    want = scored.groupby("item_id")["sentiment"].mean()
    got = items.set_index("item_id")
    reviewed = got[got["n_reviews_scored"] > 0]
    assert len(reviewed) == scored["item_id"].nunique()
    assert np.allclose(reviewed["review_sentiment"], want.reindex(reviewed.index))
    assert got.loc[got["n_reviews_scored"] == 0, "review_sentiment"].isna().all()
    assert (got["n_reviews_scored"] == got["n_reviews"]).all()  # every review of the tiny shop has text


def test_the_fit_context_reads_review_sentiment_only_up_to_the_training_cut(pipeline_runs):
    import numpy as np

    from ml.evaluate import temporal_split
    from ml.recommend import InteractionData
    from ml.tasks.training import decayed, fit_context, load_interaction_events
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    events = load_interaction_events(wh)
    train, _, cutoff = temporal_split(events, 7.0)
    data = InteractionData.from_frame(decayed(train, cutoff, 14.0))
    got = fit_context(wh, train, data)["item_sentiment"]
    reviews = wh.query("select item_id, reviewed_at, sentiment from ml.review_sentiment")
    before = reviews[reviews["reviewed_at"] <= train["event_at"].max()]
    want = before.groupby("item_id")["sentiment"].mean().reindex(data.item_ids).fillna(0.0).to_numpy()
    assert got.shape == (len(data.item_ids),) and np.allclose(got, want, atol=1e-6)
    assert len(before) < len(reviews)  # the holdout week's reviews are left out


def test_the_assistant_answers_from_the_warehouse_with_grounded_sentences(pipeline_runs):
    from ml.assistant.index import refresh_item_embeddings
    from ml.assistant.query import QuestionError
    from ml.assistant.service import Assistant
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    # build_features embedded every item; a rerun has nothing new to embed
    assert refresh_item_embeddings()["embedded"] == 0
    assistant = Assistant(wh)
    user = wh.query("select user_id from marts.interactions order by user_id limit 1")["user_id"].iloc[0]
    leaf = assistant.items["category"].iloc[0]
    cap = int(assistant.items.loc[assistant.items["category"] == leaf, "price"].max()) + 1
    answer = assistant.ask(user, f"{leaf} under {cap}", k=3)
    assert 1 <= len(answer.items) <= 3 and answer.question.categories == (leaf,)
    for item in answer.items:
        row = assistant.items.set_index("item_id").loc[item["item_id"]]
        assert row["category"] == leaf and row["price"] <= cap
        assert item["why"].startswith(f"{row['title']} at {row['price']:.2f}, by {row['brand']}, in {leaf}")
        assert f"price at most {cap}" in item["why"]
    # someone without history still gets an answer, and says so; a bad question gets a reason
    stranger = assistant.ask("nobody-here", leaf, k=2)
    assert stranger.items and "no history" in stranger.message
    try:
        assistant.ask(user, "")
    except QuestionError as exc:
        assert exc.status == 400
    else:
        raise AssertionError("an empty question was answered")


def test_the_assistant_reranks_with_the_champions_scores_for_the_user(pipeline_runs):
    import numpy as np

    from ml.assistant.retrieval import champion_scores, rank_share
    from ml.assistant.service import Assistant
    from ml.registry import Registry
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    champ = Registry(wh).champion("recommender")
    # a champion weight that outweighs everything else: the answer is the champion's own order
    led = Assistant(wh, champion_weight=1e6, explore_share=0.0)
    assert led.champion_version == champ["version_id"] and led.champion is not None
    user = wh.query("select user_id from marts.interactions order by user_id limit 1")["user_id"].iloc[0]
    leaf = led.items["category"].value_counts().index[0]
    hist = wh.query("select item_id, decayed_weight from marts.interactions where user_id = ?", [user])
    hist = hist[hist["item_id"].isin(led.index)]
    rows = hist["item_id"].map(led.index).to_numpy(np.int64)
    model, columns = led.champion
    mask = (led.items["category"] == leaf).to_numpy()
    share = rank_share(champion_scores(model, rows, hist["decayed_weight"].to_numpy(), columns), mask)
    answer = led.ask(user, leaf, k=3)
    got = [led.index[i["item_id"]] for i in answer.items]
    assert len(got) == 3 and min(share[got]) >= np.sort(share[mask])[-3]
    # without a champion term the assistant still answers (weight 0 reads no champion at all)
    plain = Assistant(wh, champion_weight=0.0, explore_share=0.0)
    assert plain.champion is None and len(plain.ask(user, leaf, k=3).items) == 3
