{% macro star(from, relation_alias=none, except=[]) -%}
    {#- The columns of a relation but those in `except`, comma-separated (dbt_utils.star's name
        and arguments, so a project with the package hub can swap it in). While dbt parses, or
        when the relation does not exist yet, `*`, as dbt_utils.star does. -#}
    {%- set excluded = except | map('lower') | list -%}
    {%- set columns = adapter.get_columns_in_relation(from) if execute else [] -%}
    {%- if not columns -%}{{ return('*') }}{%- endif -%}
    {%- set prefix = relation_alias ~ '.' if relation_alias else '' -%}
    {%- for column in columns if column.name | lower not in excluded -%}
        {{ prefix }}{{ adapter.quote(column.name) }}{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
