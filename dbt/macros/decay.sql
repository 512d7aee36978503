{#- Exponential time-decay factor 0.5^(age_days / half_life_days) of an event at `ts` seen from
    `as_of`; 1 at `as_of`, 0.5 one half-life earlier. Half-life defaults to var decay_half_life_days. -#}
{% macro decay_factor(ts, as_of, half_life_days=none) -%}
    {%- set hl = half_life_days if half_life_days is not none else var('decay_half_life_days') -%}
    power(0.5, greatest({{ days_between(ts, as_of) }}, 0.0) / {{ hl }})
{%- endmacro %}
