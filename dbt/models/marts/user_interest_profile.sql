{{ config(contract={'enforced': true}) }}
{#- Catalogue-derived interest profile: one row per user x tag the user has weighted events on,
    with the time-decayed weight, its share within the user's tags of the same kind, the number of
    events behind it and when it was last seen. (ML-based profiles: ml.user_interest_profiles.) -#}

select
    user_id,
    tag,
    tag_kind,
    cast(affinity as double precision) as weight,
    cast(affinity / nullif(sum(affinity) over (partition by user_id, tag_kind), 0) as double precision) as weight_share,
    cast(evidence_count as bigint) as evidence_count,
    cast(n_items as bigint) as n_items,
    last_seen_at,
    cast(row_number() over (partition by user_id, tag_kind order by affinity desc, tag) as integer) as tag_rank,
    as_of
from {{ ref('int_user_tags_decayed') }}
