{#- Review sentiment per item from ml.review_sentiment: the review model's reading of each review
    text (rated or not), written by build_features' score_reviews task just before these models
    run (ml/reviews/score.py). That table is the platform's own output, not a landing source, so
    it is read when it exists; before the first scoring no item has a scored review. -#}

{%- set scored = platform_table('review_sentiment') %}

{%- if scored is not none %}
select
    cast(item_id as varchar) as item_id,
    cast(count(*) as bigint) as n_reviews_scored,
    cast(avg(sentiment) as double precision) as review_sentiment,
    cast(avg(case when label = 'negative' then 1.0 else 0.0 end) as double precision) as negative_review_share
from {{ scored }}
where item_id is not null
group by item_id
{%- else %}
select
    cast(null as varchar) as item_id,
    cast(0 as bigint) as n_reviews_scored,
    cast(null as double precision) as review_sentiment,
    cast(null as double precision) as negative_review_share
where 1 = 0
{%- endif %}
