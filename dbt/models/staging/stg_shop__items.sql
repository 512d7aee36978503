{#- The catalogue: the latest version of each item (a later batch may update an item), UTC times,
    category path split into its three levels. -#}

with source as (
    select
        *,
        row_number() over (partition by item_id order by _ingested_at desc, _row_number desc) as _n
    from {{ source('shop', 'items') }}
)

select
    item_id,
    title,
    description,
    category_path,
    trim(split_part(category_path, '>', 1)) as category_l1,
    nullif(trim(split_part(category_path, '>', 2)), '') as category_l2,
    nullif(trim(split_part(category_path, '>', 3)), '') as category_l3,
    brand,
    cast(price as double precision) as price,
    attributes,
    cast(created_at at time zone 'UTC' as timestamp) as created_at,
    _batch_id as batch_id
from source
where _n = 1
