{#- Post-hook of `training_snapshots`: keep the newest var snapshots_kept snapshot ids (by
    built_at), delete the rest. Portable: plain SQL with a sub-select. -#}
{% macro drop_old_snapshots(relation) -%}
    delete from {{ relation }}
    where snapshot_id not in (
        select snapshot_id from (
            select snapshot_id, max(built_at) as built_at
            from {{ relation }}
            group by snapshot_id
            order by built_at desc, snapshot_id desc
            limit {{ var('snapshots_kept') }}
        ) as newest
    )
{%- endmacro %}
