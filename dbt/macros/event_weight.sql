{#- A CASE expression giving each event type its implicit-feedback weight (var event_weights); 0 for
    event types without a weight (search, impression). Double precision: the literals alone are
    numeric on PostgreSQL, whose per-row sums cost several times a double's. -#}
{% macro event_weight(column) -%}
    cast(case {{ column }}
    {%- for event_type, w in var('event_weights').items() %}
        when '{{ event_type }}' then {{ w }}
    {%- endfor %}
        else 0.0
    end as double precision)
{%- endmacro %}
