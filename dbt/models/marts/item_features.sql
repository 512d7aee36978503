{{ config(contract={'enforced': true}) }}
{#- Catalogue attributes with behaviour counts, read by the recommenders and explanations. -#}

with counts as (
    select
        item_id,
        count(*) as n_events,
        count(distinct user_id) as n_users,
        sum(case when event_type = 'purchase' then 1 else 0 end) as n_purchases
    from {{ ref('interaction_events') }}
    group by item_id
)

select
    i.item_id,
    i.title,
    i.category_path,
    i.category_l1,
    i.category_l2,
    i.category_l3,
    i.brand,
    i.price,
    i.created_at,
    cast(coalesce(c.n_events, 0) as bigint) as n_events,
    cast(coalesce(c.n_users, 0) as bigint) as n_users,
    cast(coalesce(c.n_purchases, 0) as bigint) as n_purchases
from {{ ref('stg_shop__items') }} as i
left join counts as c on c.item_id = i.item_id
