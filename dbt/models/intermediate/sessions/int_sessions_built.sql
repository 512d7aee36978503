{#- One row per rebuilt session (30-minute inactivity rule) with its length and what happened in it. -#}

select
    e.session_key,
    e.user_id,
    e.session_number,
    min(e.event_at) as started_at,
    max(e.event_at) as ended_at,
    cast({{ minutes_between('min(e.event_at)', 'max(e.event_at)') }} as double precision) as duration_minutes,
    cast(count(*) as bigint) as n_events,
    cast(count(case when e.event_type = 'view' then 1 end) as bigint) as n_views,
    cast(count(case when e.event_type = 'search' then 1 end) as bigint) as n_searches,
    cast(count(case when e.event_type = 'add_to_cart' then 1 end) as bigint) as n_carts,
    cast(count(case when e.event_type = 'purchase' then 1 end) as bigint) as n_purchases,
    cast(count(distinct e.item_id) as bigint) as n_items,
    cast(sum(
        case when e.event_type = 'purchase' then coalesce(e.price, i.price, 0.0) * coalesce(e.quantity, 1) else 0.0 end
    ) as double precision) as revenue
from {{ ref('int_events_sessionised') }} as e
left join {{ ref('stg_shop__items') }} as i on i.item_id = e.item_id
group by e.session_key, e.user_id, e.session_number
