{{ config(contract={'enforced': true}) }}
{#- Every item-level behaviour event with its implicit-feedback weight (var event_weights).
    Models split on event_at; impressions carry no preference and are left out. -#}

select
    e.event_id,
    e.user_id,
    e.item_id,
    e.event_type,
    e.event_at,
    cast({{ event_weight('e.event_type') }} as double precision) as weight
from {{ ref('stg_shop__events') }} as e
where e.item_id is not null
  and e.event_type in ({% for t in var('event_weights') %}'{{ t }}'{% if not loop.last %}, {% endif %}{% endfor %})
