{#- Fractional days from `start_ts` to `end_ts` (double precision), portable between DuckDB and PostgreSQL. -#}
{% macro days_between(start_ts, end_ts) -%}
    (({{ epoch_seconds(end_ts) }}) - ({{ epoch_seconds(start_ts) }})) / 86400.0
{%- endmacro %}

{#- Fractional minutes from `start_ts` to `end_ts` (double precision). -#}
{% macro minutes_between(start_ts, end_ts) -%}
    (({{ epoch_seconds(end_ts) }}) - ({{ epoch_seconds(start_ts) }})) / 60.0
{%- endmacro %}

{#- `ts` plus a (possibly fractional) number of days; negative `days` goes back in time. -#}
{% macro add_days(ts, days) -%}
    {{ return(adapter.dispatch('add_days')(ts, days)) }}
{%- endmacro %}

{% macro default__add_days(ts, days) -%}
    ({{ ts }} + ({{ days }}) * interval '1 day')
{%- endmacro %}

{% macro duckdb__add_days(ts, days) -%}
    ({{ ts }} + to_microseconds(cast(round(({{ days }}) * 86400000000.0) as bigint)))
{%- endmacro %}
