{{ config(contract={'enforced': true}) }}
{#- Catalogue attributes with behaviour counts, decayed popularity, rates, review sentiment and the
    catalogue-derived tags; read by the recommenders, explanations and the explorer. -#}

with counts as (
    select
        item_id,
        count(*) as n_events,
        count(distinct user_id) as n_users,
        sum(case when event_type = 'purchase' then 1 else 0 end) as n_purchases
    from {{ ref('interaction_events') }}
    group by item_id
),

ranked_tags as (
    select
        item_id,
        tag,
        tag_kind,
        row_number() over (partition by item_id, tag_kind order by score desc, tag) as tag_rank
    from {{ ref('int_items_tagged') }}
),

{#- one row per item with its strongest tag of each kind (a pivot, not one join per kind) #}
tags as (
    select
        item_id,
        max(case when tag_kind = 'department' then tag end) as department_tag,
        max(case when tag_kind = 'category' then tag end) as category_tag,
        max(case when tag_kind = 'style' then tag end) as style_tag,
        max(case when tag_kind = 'brand-tier' then tag end) as tier_tag
    from ranked_tags
    where tag_rank = 1
    group by item_id
),

horizon as (
    select max(event_at) as as_of from {{ ref('interaction_events') }}
)

select
    i.item_id,
    i.title,
    i.category_path,
    i.category_l1,
    i.category_l2,
    i.category_l3,
    i.brand,
    i.price,
    i.created_at,
    cast(coalesce(c.n_events, 0) as bigint) as n_events,
    cast(coalesce(c.n_users, 0) as bigint) as n_users,
    cast(coalesce(c.n_purchases, 0) as bigint) as n_purchases,
    cast(coalesce(p.n_views, 0) as bigint) as n_views,
    cast(coalesce(p.n_clicks, 0) as bigint) as n_clicks,
    cast(coalesce(p.n_carts, 0) as bigint) as n_carts,
    cast(coalesce(p.n_reviews, 0) as bigint) as n_reviews,
    cast(coalesce(p.n_impressions, 0) as bigint) as n_impressions,
    cast(coalesce(p.popularity_decayed, 0.0) as double precision) as popularity_decayed,
    cast(p.avg_rating as double precision) as avg_rating,
    cast(coalesce(r.n_reviews_scored, 0) as bigint) as n_reviews_scored,
    cast(r.review_sentiment as double precision) as review_sentiment,
    cast(r.negative_review_share as double precision) as negative_review_share,
    cast(p.click_through_rate as double precision) as click_through_rate,
    cast(p.conversion_rate as double precision) as conversion_rate,
    p.last_event_at,
    cast({{ days_between('i.created_at', 'h.as_of') }} as double precision) as age_days,
    cast(t.department_tag as varchar) as department_tag,
    cast(t.category_tag as varchar) as category_tag,
    cast(t.style_tag as varchar) as style_tag,
    cast(t.tier_tag as varchar) as tier_tag
from {{ ref('stg_shop__items') }} as i
cross join horizon as h
left join counts as c on c.item_id = i.item_id
left join {{ ref('int_items_popularity_decayed') }} as p on p.item_id = i.item_id
left join tags as t on t.item_id = i.item_id
left join {{ ref('int_items_review_sentiment') }} as r on r.item_id = i.item_id
