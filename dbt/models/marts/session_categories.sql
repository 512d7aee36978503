{{ config(contract={'enforced': true}) }}
{#- The category basket of every rebuilt session (30-minute rule): one row per session x leaf
    category path with weighted events. Input of the association rules in ml/analysis. -#}

select
    e.session_key,
    e.user_id,
    i.category_path,
    cast(count(*) as bigint) as n_events,
    min(e.event_at) as first_at
from {{ ref('int_events_sessionised') }} as e
inner join {{ ref('stg_shop__items') }} as i on i.item_id = e.item_id
where e.event_type in {{ weighted_event_types() }}
group by e.session_key, e.user_id, i.category_path
