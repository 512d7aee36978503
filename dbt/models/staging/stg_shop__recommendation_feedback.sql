{#- Feedback on recommendation slates: one row per impression or click (first-ingested copy of
    each event_id), with the slate id and the 1-based slot the item was shown in. -#}

with source as (
    select
        *,
        row_number() over (partition by event_id order by _ingested_at, _batch_id, _row_number) as _n
    from {{ source('shop', 'events') }}
    where lower(event_type) in ('impression', 'click')
)

select
    event_id,
    recommendation_id,
    cast(position as integer) as slot_position,
    user_id,
    item_id,
    lower(event_type) as feedback_type,
    cast(event_time at time zone 'UTC' as timestamp) as event_at,
    _batch_id as batch_id
from source
where _n = 1
