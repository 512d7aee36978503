{#- User profiles: the latest version of each user, UTC sign-up time, upper-case country, and
    marketing consent. A batch may leave marketing_opt_out out or blank (older export format):
    that is "not stated", so the user's latest *stated* value counts, and false when the shop
    never stated one. An old-format re-send therefore cannot undo an opt-out. -#}

with source as (
    select
        *,
        row_number() over (partition by user_id order by _ingested_at desc, _row_number desc) as _n
    from {{ source('shop', 'users') }}
),

stated_consent as (
    select
        user_id,
        marketing_opt_out,
        row_number() over (partition by user_id order by _ingested_at desc, _row_number desc) as _n
    from source
    where marketing_opt_out is not null
)

select
    s.user_id,
    cast(s.signup_time at time zone 'UTC' as timestamp) as signup_at,
    upper(nullif(trim(s.country), '')) as country,
    coalesce(c.marketing_opt_out, false) as marketing_opt_out
from source as s
left join stated_consent as c on c.user_id = s.user_id and c._n = 1
where s._n = 1
