{{
  config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
  )
}}
{#- Events, incremental on event_id. Each run re-reads batches ingested within the look-back
    window, so a late-arriving event (old event_time, new batch) is merged exactly once. -#}

with source as (
    select * from {{ source('shop', 'events') }}
    {% if is_incremental() %}
    where _ingested_at >= (
        select coalesce(max(ingested_at), cast('1970-01-01' as timestamp)) from {{ this }}
    ) - interval '{{ var("late_arrival_lookback_hours") }} hours'
    {% endif %}
),

deduplicated as (
    select
        *,
        row_number() over (partition by event_id order by _ingested_at, _row_number) as _n
    from source
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
    cast(_ingested_at at time zone 'UTC' as timestamp) as ingested_at
from deduplicated
where _n = 1
