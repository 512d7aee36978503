{#- Fractional days from `start_ts` to `end_ts`, portable between DuckDB and PostgreSQL. -#}
{% macro days_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('days_between')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__days_between(start_ts, end_ts) -%}
    (extract(epoch from ({{ end_ts }})) - extract(epoch from ({{ start_ts }}))) / 86400.0
{%- endmacro %}

{% macro duckdb__days_between(start_ts, end_ts) -%}
    (epoch({{ end_ts }}) - epoch({{ start_ts }})) / 86400.0
{%- endmacro %}
