{#- The event types that carry an implicit-feedback weight (the keys of var event_weights), as a
    SQL list literal: ('view', 'click', ...). -#}
{% macro weighted_event_types() -%}
    ({% for t in var('event_weights') %}'{{ t }}'{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}
