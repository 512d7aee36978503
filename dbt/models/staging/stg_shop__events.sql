{{
  config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
  )
}}
{#- Events, incremental on event_id. Each run re-reads the batches ingested within the look-back
    window (var late_arrival_lookback_hours) before the newest batch already staged, so a late
    event (old event_time, new batch) is merged, and merged exactly once: within the window a
    repeated event_id keeps its first-ingested row, and an event_id already staged from an
    earlier batch is never replaced by a later copy. -#}

with source as (
    select
        *,
        cast(_ingested_at at time zone 'UTC' as timestamp) as _ingested_utc
    from {{ source('shop', 'events') }}
),

{% if is_incremental() %}
windowed as (
    select s.*
    from source as s
    where s._ingested_utc >= (
        select coalesce(max(ingested_at), cast('1970-01-01' as timestamp)) from {{ this }}
    ) - interval '{{ var("late_arrival_lookback_hours") }} hours'
      and not exists (
        select 1 from {{ this }} as t
        where t.event_id = s.event_id and t.ingested_at < s._ingested_utc
      )
),
{% else %}
windowed as (
    select * from source
),
{% endif %}

deduplicated as (
    select
        *,
        row_number() over (partition by event_id order by _ingested_utc, _batch_id, _row_number) as _n
    from windowed
)

select
    event_id,
    cast(event_time at time zone 'UTC' as timestamp) as event_at,
    user_id,
    session_id,
    lower(event_type) as event_type,
    item_id,
    nullif(trim(lower(query)), '') as search_query,
    cast(price as double precision) as price,
    cast(quantity as integer) as quantity,
    cast(rating as integer) as rating,
    review_text,
    recommendation_id,
    cast(position as integer) as slot_position,
    _batch_id as batch_id,
    _ingested_utc as ingested_at
from deduplicated
where _n = 1
