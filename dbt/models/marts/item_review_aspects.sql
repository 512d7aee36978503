{#- Per item and aspect (quality, fit, delivery, value, looks), how its reviews read: from
    ml.review_aspects, the sentences about an aspect that build_features' score_reviews task
    reads with the review model (ml/reviews/aspects.py). That table is the platform's own
    output, read when it exists; before the first scoring the mart is empty. -#}

{%- set read = platform_table('review_aspects') %}

{%- if read is not none %}
select
    cast(item_id as varchar) as item_id,
    cast(aspect as varchar) as aspect,
    cast(count(*) as bigint) as n_mentions,
    cast(avg(sentiment) as double precision) as aspect_sentiment,
    cast(avg(case when sentiment < 0 then 1.0 else 0.0 end) as double precision) as negative_share
from {{ read }}
where item_id is not null and aspect is not null
group by item_id, aspect
{%- else %}
select
    cast(null as varchar) as item_id,
    cast(null as varchar) as aspect,
    cast(0 as bigint) as n_mentions,
    cast(null as double precision) as aspect_sentiment,
    cast(null as double precision) as negative_share
where 1 = 0
{%- endif %}
