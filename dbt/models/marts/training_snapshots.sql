{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    contract={'enforced': true},
    post_hook="{{ drop_old_snapshots(this) }}"
  )
}}
{#- Time-based training splits keyed by a snapshot id. The id is a hash of what the data is (row
    count, latest event, total weight, holdout window, event weights), so the same data always
    gets the same id and a model version can name the exact rows it saw. A build adds a snapshot
    only when its id is new; the newest var snapshots_kept snapshots are kept. Events before
    `cutoff_at` (latest event minus var holdout_days) are `train`, the rest `test`. -#}

with events as (
    select * from {{ ref('interaction_events') }}
),

stats as (
    select
        count(*) as n_events,
        max(event_at) as as_of,
        sum(weight) as total_weight
    from events
),

current_snapshot as (
    select
        'snap-' || substr(md5(
            cast(n_events as varchar)
            || '|' || cast(cast(floor({{ epoch_seconds('as_of') }}) as bigint) as varchar)
            || '|' || cast(cast(round(total_weight * 1000) as bigint) as varchar)
            || '|{{ var("holdout_days") }}|{{ var("event_weights") | tojson }}'
        ), 1, 16) as snapshot_id,
        as_of,
        {{ add_days('as_of', '-1.0 * ' ~ var('holdout_days')) }} as cutoff_at
    from stats
    where n_events > 0
)

select
    cast(s.snapshot_id as varchar) as snapshot_id,
    cast(s.cutoff_at as timestamp) as cutoff_at,
    cast(s.as_of as timestamp) as as_of,
    cast(case when e.event_at < s.cutoff_at then 'train' else 'test' end as varchar) as split,
    e.event_id,
    e.user_id,
    e.item_id,
    e.event_type,
    e.event_at,
    e.weight,
    cast(current_timestamp at time zone 'UTC' as timestamp) as built_at
from events as e
cross join current_snapshot as s
{% if is_incremental() %}
where s.snapshot_id not in (select distinct snapshot_id from {{ this }})
{% endif %}
