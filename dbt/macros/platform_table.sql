{#- The platform's own table `ml.<identifier>` (written by an ml/ task, not a landing source) as
    a relation when it exists, else none; none while dbt only parses the project. Models that
    read such a table build an empty result without it. -#}
{% macro platform_table(identifier) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=target.database, schema='ml', identifier=identifier)) }}
{%- endmacro %}
