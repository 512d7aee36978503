{#- User profiles: the latest version of each user, UTC sign-up time, upper-case country. -#}

with source as (
    select
        *,
        row_number() over (partition by user_id order by _ingested_at desc, _row_number desc) as _n
    from {{ source('shop', 'users') }}
)

select
    user_id,
    cast(signup_time at time zone 'UTC' as timestamp) as signup_at,
    upper(nullif(trim(country), '')) as country
from source
where _n = 1
