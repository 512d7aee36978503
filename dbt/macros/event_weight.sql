{#- A CASE expression giving each event type its implicit-feedback weight (var event_weights). -#}
{% macro event_weight(column) -%}
    case {{ column }}
    {%- for event_type, w in var('event_weights').items() %}
        when '{{ event_type }}' then {{ w }}
    {%- endfor %}
        else 0.0
    end
{%- endmacro %}
