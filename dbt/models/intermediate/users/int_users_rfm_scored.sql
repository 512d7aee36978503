{#- Recency, frequency and monetary features per user with 1-5 quintile scores (5 = most recent,
    most sessions, most spent). Recency is in days before the latest event in the shop. -#}

with events as (
    select
        e.user_id,
        e.session_key,
        e.event_type,
        e.event_at,
        e.item_id,
        i.category_path,
        case
            when e.event_type = 'purchase' then coalesce(e.price, i.price, 0.0) * coalesce(e.quantity, 1)
            else 0.0
        end as revenue
    from {{ ref('int_events_sessionised') }} as e
    left join {{ ref('stg_shop__items') }} as i on i.item_id = e.item_id
),

horizon as (
    select max(event_at) as as_of from events
),

per_user as (
    select
        user_id,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at,
        count(distinct session_key) as n_sessions,
        count(*) as n_events,
        count(case when event_type = 'view' then 1 end) as n_views,
        count(case when event_type = 'search' then 1 end) as n_searches,
        count(case when event_type = 'add_to_cart' then 1 end) as n_carts,
        count(case when event_type = 'purchase' then 1 end) as n_purchases,
        sum(revenue) as monetary,
        count(distinct case when event_type in {{ weighted_event_types() }} then item_id end) as n_distinct_items,
        count(distinct case when event_type in {{ weighted_event_types() }} then category_path end)
            as n_distinct_categories
    from events
    group by user_id
),

scored as (
    select
        p.*,
        {{ days_between('p.last_event_at', 'h.as_of') }} as recency_days
    from per_user as p
    cross join horizon as h
)

select
    user_id,
    first_event_at,
    last_event_at,
    cast(recency_days as double precision) as recency_days,
    cast(n_sessions as bigint) as n_sessions,
    cast(n_events as bigint) as n_events,
    cast(n_views as bigint) as n_views,
    cast(n_searches as bigint) as n_searches,
    cast(n_carts as bigint) as n_carts,
    cast(n_purchases as bigint) as n_purchases,
    cast(monetary as double precision) as monetary,
    cast(case when n_purchases > 0 then monetary / n_purchases end as double precision) as avg_order_value,
    cast(n_distinct_items as bigint) as n_distinct_items,
    cast(n_distinct_categories as bigint) as n_distinct_categories,
    cast(ntile(5) over (order by recency_days desc, user_id) as integer) as recency_score,
    cast(ntile(5) over (order by n_sessions, user_id) as integer) as frequency_score,
    cast(ntile(5) over (order by monetary, user_id) as integer) as monetary_score
from scored
