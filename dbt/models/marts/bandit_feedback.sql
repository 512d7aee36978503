{{ config(contract={'enforced': true}) }}
{#- Bandit feedback: one row per shown slot (recommendation_id, position) with what the user did,
    and, when the platform logged that slate, the tag, policy and propensity it was shown with.

    * impressions and clicks are joined by recommendation_id and position;
    * purchases are attributed to shown slots, each purchase to one slot: the slot of the slate
      whose recommendation_id the purchase carries (same item), else the latest impression of the
      same item to the same user within var bandit_attribution_hours before the purchase (last
      touch; a click is not required). A slot is purchased when a purchase is attributed to it;
      its revenue is the sum of price x quantity (1 when missing) of those purchases, 0 when none
      (a purchase without a price adds nothing);
    * the logged columns come from ml.logged_slates (written by the publish task) and only when
      the logged item equals the impression's item. That table is the platform's own log, not a
      landing source, so it is read when it exists: before the first publish (or for slates the
      shop's earlier recommender showed) the logged columns are null and has_propensity is false.
    ml.ope.logged and the policies read this mart; ml.explore.feedback.feedback_from_events is
    its in-memory twin (same rules). -#}

{%- set slates = platform_table('logged_slates') %}

with events as (
    select event_id, recommendation_id, slot_position, event_type, user_id, item_id, event_at, price, quantity
    from {{ ref('stg_shop__events') }}
    where event_type in ('impression', 'click', 'purchase')
),

impressions as (
    select
        recommendation_id,
        slot_position,
        min(user_id) as user_id,
        min(item_id) as item_id,
        min(event_at) as shown_at
    from events
    where event_type = 'impression'
      and recommendation_id is not null
      and slot_position is not null
    group by recommendation_id, slot_position
),

clicks as (
    select recommendation_id, slot_position, min(event_at) as clicked_at
    from events
    where event_type = 'click'
      and recommendation_id is not null
      and slot_position is not null
    group by recommendation_id, slot_position
),

purchases as (
    select
        event_id as purchase_id,
        user_id,
        item_id,
        recommendation_id,
        event_at as bought_at,
        price * coalesce(quantity, 1) as amount
    from events
    where event_type = 'purchase'
),

logged as (
{%- if slates is not none %}
    select
        recommendation_id,
        cast(position as integer) as slot_position,
        item_id as logged_item_id,
        tag,
        policy,
        policy_version,
        propensity,
        propensity_se,
        is_exploration,
        arm_features,
        run_id as logged_run_id
    from {{ slates }}
{%- else %}
    select
        cast(null as varchar) as recommendation_id,
        cast(null as integer) as slot_position,
        cast(null as varchar) as logged_item_id,
        cast(null as varchar) as tag,
        cast(null as varchar) as policy,
        cast(null as varchar) as policy_version,
        cast(null as double precision) as propensity,
        cast(null as double precision) as propensity_se,
        cast(null as boolean) as is_exploration,
        cast(null as varchar) as arm_features,
        cast(null as varchar) as logged_run_id
    where 1 = 0
{%- endif %}
),

shown as (
    select
        i.recommendation_id,
        i.slot_position,
        i.user_id,
        i.item_id,
        i.shown_at,
        c.clicked_at
    from impressions as i
    left join clicks as c
        on c.recommendation_id = i.recommendation_id
        and c.slot_position = i.slot_position
),

{#- every (purchase, slot) pair the purchase may go to: the slate it carries the id of, or an
    earlier impression of the item to the same user within the window (two equality joins) -#}
touches as (
    select p.purchase_id, p.amount, s.recommendation_id, s.slot_position, s.shown_at, 0 as by_window
    from purchases as p
    inner join shown as s
        on s.recommendation_id = p.recommendation_id
        and s.item_id = p.item_id
    union all
    select p.purchase_id, p.amount, s.recommendation_id, s.slot_position, s.shown_at, 1 as by_window
    from purchases as p
    inner join shown as s
        on s.user_id = p.user_id
        and s.item_id = p.item_id
        and p.bought_at >= s.shown_at
        and p.bought_at <= s.shown_at + interval '{{ var("bandit_attribution_hours", 72) }} hours'
),

ranked_touches as (
    select
        purchase_id,
        amount,
        recommendation_id,
        slot_position,
        row_number() over (
            partition by purchase_id
            order by by_window, shown_at desc, recommendation_id, slot_position
        ) as touch_rank
    from touches
),

bought as (
    select recommendation_id, slot_position, sum(amount) as revenue
    from ranked_touches
    where touch_rank = 1
    group by recommendation_id, slot_position
)

select
    cast(s.recommendation_id || '#' || cast(s.slot_position as varchar) as varchar) as feedback_id,
    cast(s.recommendation_id as varchar) as recommendation_id,
    cast(s.slot_position as integer) as position,
    cast(s.user_id as varchar) as user_id,
    cast(s.item_id as varchar) as item_id,
    cast(s.shown_at as timestamp) as shown_at,
    cast(case when s.clicked_at is not null then 1 else 0 end as integer) as clicked,
    cast(case when b.recommendation_id is not null then 1 else 0 end as integer) as purchased,
    cast(coalesce(b.revenue, 0.0) as double precision) as revenue,
    cast(l.tag as varchar) as tag,
    cast(l.policy as varchar) as policy,
    cast(l.policy_version as varchar) as policy_version,
    cast(l.propensity as double precision) as propensity,
    cast(l.propensity_se as double precision) as propensity_se,
    cast(l.is_exploration as boolean) as is_exploration,
    cast(l.arm_features as varchar) as arm_features,
    cast(l.logged_run_id as varchar) as logged_run_id,
    cast(l.propensity is not null as boolean) as has_propensity
from shown as s
left join bought as b
    on b.recommendation_id = s.recommendation_id
    and b.slot_position = s.slot_position
left join logged as l
    on l.recommendation_id = s.recommendation_id
    and l.slot_position = s.slot_position
    and l.logged_item_id = s.item_id
