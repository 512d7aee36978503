{#- Item co-occurrence within sessions: pairs of distinct items that received weighted events
    (var event_weights) in the same session, counted once per session. Each unordered pair is
    stored once with item_id < other_item_id. Sessions with more than var cooccurrence_max_items
    distinct items are left out. -#}

with session_items as (
    select distinct session_key, user_id, item_id
    from {{ ref('int_events_sessionised') }}
    where item_id is not null
      and event_type in {{ weighted_event_types() }}
),

session_sizes as (
    select session_key, count(*) as n_items
    from session_items
    group by session_key
),

kept as (
    select s.session_key, s.user_id, s.item_id
    from session_items as s
    inner join session_sizes as z on z.session_key = s.session_key
    where z.n_items between 2 and {{ var('cooccurrence_max_items') }}
)

select
    a.item_id,
    b.item_id as other_item_id,
    cast(count(*) as bigint) as n_sessions,
    cast(count(distinct a.user_id) as bigint) as n_users
from kept as a
inner join kept as b on b.session_key = a.session_key and a.item_id < b.item_id
group by a.item_id, b.item_id
