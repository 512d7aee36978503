{#- Search query -> category signals: the weighted item events that follow a search in the same
    session, before the session's next search and within var search_attribution_minutes, are
    credited to the query (normalised text) and the item's leaf category path. `share` is the
    category's part of the query's follow-up events. -#}

with events as (
    select * from {{ ref('int_events_sessionised') }}
),

searches as (
    select
        session_key,
        event_seq,
        event_at,
        search_query,
        lead(event_seq) over (partition by session_key order by event_seq) as next_search_seq
    from events
    where event_type = 'search'
      and search_query is not null
),

follow_ups as (
    select
        s.search_query,
        i.category_path,
        e.session_key,
        e.user_id
    from searches as s
    inner join events as e
        on e.session_key = s.session_key
        and e.event_seq > s.event_seq
        and (s.next_search_seq is null or e.event_seq < s.next_search_seq)
    inner join {{ ref('stg_shop__items') }} as i on i.item_id = e.item_id
    where e.event_type in {{ weighted_event_types() }}
      and {{ minutes_between('s.event_at', 'e.event_at') }} <= {{ var('search_attribution_minutes') }}
)

select
    search_query,
    category_path,
    cast(count(*) as bigint) as n_events,
    cast(count(distinct session_key) as bigint) as n_sessions,
    cast(count(distinct user_id) as bigint) as n_users,
    cast(1.0 * count(*) / sum(count(*)) over (partition by search_query) as double precision) as share
from follow_ups
group by search_query, category_path
