{#- Seconds since 1970-01-01 (double precision) of a timestamp, portable between DuckDB and PostgreSQL. -#}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    cast(extract(epoch from ({{ ts }})) as double precision)
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    cast(epoch({{ ts }}) as double precision)
{%- endmacro %}
