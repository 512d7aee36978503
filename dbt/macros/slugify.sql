{#- Tag slug of a label, as ml/shop/taxonomy.py:slug does: lower case, '&' -> 'and', runs of
    white space -> '_'. "Coffee Makers" -> coffee_makers. -#}
{% macro slugify(text) -%}
    regexp_replace(lower(trim(replace({{ text }}, '&', 'and'))), '\s+', '_', 'g')
{%- endmacro %}
