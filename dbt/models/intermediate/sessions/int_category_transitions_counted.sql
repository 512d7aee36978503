{#- The Markov chain of browsing: within each session, consecutive weighted events on two
    different items give one step from the first item's leaf category path to the second's
    (a step may stay in the same category). -#}

with steps as (
    select
        e.session_key,
        e.user_id,
        e.item_id,
        i.category_path,
        lag(e.item_id) over (partition by e.session_key order by e.event_at, e.event_id) as previous_item_id,
        lag(i.category_path) over (partition by e.session_key order by e.event_at, e.event_id) as previous_category
    from {{ ref('int_events_sessionised') }} as e
    inner join {{ ref('stg_shop__items') }} as i on i.item_id = e.item_id
    where e.event_type in {{ weighted_event_types() }}
)

select
    previous_category as from_category,
    category_path as to_category,
    cast(count(*) as bigint) as n_transitions,
    cast(count(distinct session_key) as bigint) as n_sessions,
    cast(count(distinct user_id) as bigint) as n_users
from steps
where previous_category is not null
  and previous_item_id <> item_id
group by previous_category, category_path
