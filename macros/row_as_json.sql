{% macro row_as_json(relation, exclude) -%}
    {#- The whole row of `relation` (read without an alias) as JSON, without the column
        `exclude`: PostgreSQL's jsonb; Spark's JSON text, its columns listed from the relation. -#}
    {{ return(adapter.dispatch('row_as_json', 'clutter_haven')(relation, exclude)) }}
{%- endmacro %}

{% macro default__row_as_json(relation, exclude) -%}
    to_jsonb({{ relation.identifier }}) - '{{ exclude }}'
{%- endmacro %}

{% macro spark__row_as_json(relation, exclude) -%}
    {%- set columns = adapter.get_columns_in_relation(relation) if execute else [] -%}
    to_json(named_struct(
        {%- for column in columns if column.name != exclude %}
        '{{ column.name }}', {{ column.name }}{{ "," if not loop.last }}
        {%- endfor %}
    ))
{%- endmacro %}
