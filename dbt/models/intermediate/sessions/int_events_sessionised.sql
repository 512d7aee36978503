{#- Every staged event with the session it belongs to. Sessions are rebuilt from behaviour, not
    taken from the shop's session_id: a user's events are ordered by time, and a gap of more than
    var session_gap_minutes (30) since the user's previous event starts a new session. -#}

with events as (
    select
        event_id,
        user_id,
        event_at,
        event_type,
        item_id,
        search_query,
        price,
        quantity,
        rating,
        lag(event_at) over (partition by user_id order by event_at, event_id) as previous_at
    from {{ ref('stg_shop__events') }}
),

flagged as (
    select
        *,
        case
            when previous_at is null then null
            else {{ minutes_between('previous_at', 'event_at') }}
        end as minutes_since_previous
    from events
),

numbered as (
    select
        *,
        sum(
            case when minutes_since_previous is null or minutes_since_previous > {{ var('session_gap_minutes') }}
                then 1 else 0 end
        ) over (partition by user_id order by event_at, event_id rows between unbounded preceding and current row)
            as session_number
    from flagged
)

select
    event_id,
    user_id,
    user_id || '#' || cast(session_number as varchar) as session_key,
    cast(session_number as integer) as session_number,
    cast(row_number() over (partition by user_id, session_number order by event_at, event_id) as integer) as event_seq,
    event_at,
    event_type,
    item_id,
    search_query,
    price,
    quantity,
    rating,
    cast(minutes_since_previous as double precision) as minutes_since_previous
from numbered
