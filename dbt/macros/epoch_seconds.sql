{#- Seconds since 1970-01-01 (double precision) of a timestamp, portable between DuckDB and PostgreSQL. -#}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    cast(extract(epoch from ({{ ts }})) as double precision)
{%- endmacro %}

{#- PostgreSQL: date_part computes in double precision; extract (numeric since PostgreSQL 14)
    costs a numeric per row, and the decay and session-gap models call this on every event.
    Both give the same double: microseconds / 1e6 rounded once. -#}
{% macro postgres__epoch_seconds(ts) -%}
    date_part('epoch', {{ ts }})
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    cast(epoch({{ ts }}) as double precision)
{%- endmacro %}
