{#- Item popularity: event counts by type and the exponentially time-decayed sum of
    implicit-feedback weights (half-life var decay_half_life_days, measured back from the latest
    weighted event), plus click-through and conversion rates. -#}

with events as (
    select
        event_id,
        user_id,
        item_id,
        event_type,
        event_at,
        rating,
        {{ event_weight('event_type') }} as weight
    from {{ ref('stg_shop__events') }}
    where item_id is not null
),

horizon as (
    select max(event_at) as as_of from events where event_type in {{ weighted_event_types() }}
),

counts as (
    select
        e.item_id,
        count(case when e.event_type in {{ weighted_event_types() }} then 1 end) as n_weighted_events,
        count(distinct case when e.event_type in {{ weighted_event_types() }} then e.user_id end) as n_users,
        count(case when e.event_type = 'view' then 1 end) as n_views,
        count(case when e.event_type = 'click' then 1 end) as n_clicks,
        count(case when e.event_type = 'add_to_cart' then 1 end) as n_carts,
        count(case when e.event_type = 'purchase' then 1 end) as n_purchases,
        count(case when e.event_type = 'review' then 1 end) as n_reviews,
        count(case when e.event_type = 'impression' then 1 end) as n_impressions,
        avg(case when e.event_type = 'review' then cast(e.rating as double precision) end) as avg_rating,
        sum(e.weight * {{ decay_factor('e.event_at', 'h.as_of') }}) as popularity_decayed,
        max(case when e.event_type in {{ weighted_event_types() }} then e.event_at end) as last_event_at
    from events as e
    cross join horizon as h
    group by e.item_id
)

select
    item_id,
    cast(n_weighted_events as bigint) as n_weighted_events,
    cast(n_users as bigint) as n_users,
    cast(n_views as bigint) as n_views,
    cast(n_clicks as bigint) as n_clicks,
    cast(n_carts as bigint) as n_carts,
    cast(n_purchases as bigint) as n_purchases,
    cast(n_reviews as bigint) as n_reviews,
    cast(n_impressions as bigint) as n_impressions,
    cast(avg_rating as double precision) as avg_rating,
    cast(popularity_decayed as double precision) as popularity_decayed,
    cast(case when n_impressions > 0 then 1.0 * n_clicks / n_impressions end as double precision) as click_through_rate,
    cast(case when n_views > 0 then least(1.0, 1.0 * n_purchases / n_views) end as double precision) as conversion_rate,
    last_event_at
from counts
