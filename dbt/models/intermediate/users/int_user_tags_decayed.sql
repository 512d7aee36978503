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
),

{#- one row per user x item first (11M events -> 6M pairs on the large shop): the join with the
    item's tags and the per-tag aggregate then run on pairs, and the distinct-item count is a
    plain count ((item_id, tag) is unique in int_items_tagged), which PostgreSQL would otherwise
    compute by sorting every user x tag x event row -#}
user_items as (
    select
        e.user_id,
        e.item_id,
        sum(e.weight * {{ decay_factor('e.event_at', 'h.as_of') }}) as decayed_weight,
        sum(e.weight) as weight,
        count(*) as n_events,
        max(e.event_at) as last_at
    from events as e
    cross join horizon as h
    group by e.user_id, e.item_id
)

select
    u.user_id,
    t.tag,
    t.tag_kind,
    cast(sum(u.decayed_weight * t.score) as double precision) as affinity,
    cast(sum(u.weight * t.score) as double precision) as undecayed_affinity,
    cast(sum(u.n_events) as bigint) as evidence_count,
    cast(count(*) as bigint) as n_items,
    max(u.last_at) as last_seen_at,
    max(h.as_of) as as_of
from user_items as u
inner join {{ ref('int_items_tagged') }} as t on t.item_id = u.item_id
cross join horizon as h
group by u.user_id, t.tag, t.tag_kind
