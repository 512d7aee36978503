{#- User x tag affinity: each weighted event (var event_weights) on an item spreads its weight
    over the item's catalogue tags (times the tag's score) and decays exponentially with age
    (half-life var decay_half_life_days, measured back from the latest weighted event). -#}

with events as (
    select
        user_id,
        item_id,
        event_at,
        {{ event_weight('event_type') }} as weight
    from {{ ref('stg_shop__events') }}
    where item_id is not null
      and event_type in {{ weighted_event_types() }}
),

horizon as (
    select max(event_at) as as_of from events
)

select
    e.user_id,
    t.tag,
    t.tag_kind,
    cast(sum(e.weight * t.score * {{ decay_factor('e.event_at', 'h.as_of') }}) as double precision) as affinity,
    cast(sum(e.weight * t.score) as double precision) as undecayed_affinity,
    cast(count(*) as bigint) as evidence_count,
    cast(count(distinct e.item_id) as bigint) as n_items,
    max(e.event_at) as last_seen_at,
    max(h.as_of) as as_of
from events as e
inner join {{ ref('int_items_tagged') }} as t on t.item_id = e.item_id
cross join horizon as h
group by e.user_id, t.tag, t.tag_kind
