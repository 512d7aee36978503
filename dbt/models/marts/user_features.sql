{{ config(contract={'enforced': true}) }}
{#- One row per known user (profile or behaviour): profile (with marketing consent; a user seen
    only in events has not opted out), recency/frequency/monetary features
    with quintile scores, session habits and the strongest catalogue-derived interests. -#}

with users as (
    select user_id from {{ ref('stg_shop__users') }}
    union
    select distinct user_id from {{ ref('stg_shop__events') }}
),

sessions as (
    select
        user_id,
        avg(duration_minutes) as avg_session_minutes,
        avg(n_events) as avg_events_per_session
    from {{ ref('int_sessions_built') }}
    group by user_id
),

ranked_tags as (
    select
        user_id,
        tag,
        tag_kind,
        row_number() over (partition by user_id, tag_kind order by affinity desc, tag) as tag_rank
    from {{ ref('int_user_tags_decayed') }}
    where tag_kind in ('category', 'style')
),

{#- one row per user (a pivot, not one join per kind: keeps PostgreSQL on hash joins) #}
top_tags as (
    select
        user_id,
        max(case when tag_kind = 'category' then tag end) as top_category_tag,
        max(case when tag_kind = 'style' then tag end) as top_style_tag
    from ranked_tags
    where tag_rank = 1
    group by user_id
)

select
    u.user_id,
    p.signup_at,
    p.country,
    cast(coalesce(p.marketing_opt_out, false) as boolean) as marketing_opt_out,
    r.first_event_at,
    r.last_event_at,
    cast(r.recency_days as double precision) as recency_days,
    cast(coalesce(r.n_sessions, 0) as bigint) as n_sessions,
    cast(coalesce(r.n_events, 0) as bigint) as n_events,
    cast(coalesce(r.n_views, 0) as bigint) as n_views,
    cast(coalesce(r.n_searches, 0) as bigint) as n_searches,
    cast(coalesce(r.n_carts, 0) as bigint) as n_carts,
    cast(coalesce(r.n_purchases, 0) as bigint) as n_purchases,
    cast(coalesce(r.monetary, 0.0) as double precision) as monetary,
    cast(r.avg_order_value as double precision) as avg_order_value,
    cast(coalesce(r.n_distinct_items, 0) as bigint) as n_distinct_items,
    cast(coalesce(r.n_distinct_categories, 0) as bigint) as n_distinct_categories,
    cast(s.avg_session_minutes as double precision) as avg_session_minutes,
    cast(s.avg_events_per_session as double precision) as avg_events_per_session,
    cast(r.recency_score as integer) as recency_score,
    cast(r.frequency_score as integer) as frequency_score,
    cast(r.monetary_score as integer) as monetary_score,
    cast(t.top_category_tag as varchar) as top_category_tag,
    cast(t.top_style_tag as varchar) as top_style_tag,
    cast(r.user_id is not null as boolean) as has_events
from users as u
left join {{ ref('stg_shop__users') }} as p on p.user_id = u.user_id
left join {{ ref('int_users_rfm_scored') }} as r on r.user_id = u.user_id
left join sessions as s on s.user_id = u.user_id
left join top_tags as t on t.user_id = u.user_id
