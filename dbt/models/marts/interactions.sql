{{ config(contract={'enforced': true}) }}
{#- One row per user x item: summed and time-decayed implicit feedback (half-life var). -#}

with events as (
    select * from {{ ref('interaction_events') }}
),

horizon as (
    select max(event_at) as as_of from events
)

select
    e.user_id,
    e.item_id,
    cast(sum(e.weight) as double precision) as weight,
    cast(sum(
        e.weight * power(0.5, {{ days_between('e.event_at', 'h.as_of') }} / {{ var('decay_half_life_days') }})
    ) as double precision) as decayed_weight,
    cast(count(*) as bigint) as n_events,
    cast(sum(case when e.event_type = 'purchase' then 1 else 0 end) as bigint) as n_purchases,
    min(e.event_at) as first_at,
    max(e.event_at) as last_at,
    {#- the half-life the weights were decayed with: scoring reads decayed_weight only when it
        is the champion's #}
    cast({{ var('decay_half_life_days') }} as double precision) as decay_half_life_days
from events as e
cross join horizon as h
group by e.user_id, e.item_id
