{% macro not_materialized() -%}
    {#- In a CTE header (`name as {{ not_materialized() }} (`): PostgreSQL must inline a CTE read
        twice (latest_version reads its input twice) so a filter on keys reaches the raw table;
        Spark always inlines and knows no such keyword. -#}
    {{ return(adapter.dispatch('not_materialized', 'clutter_haven')()) }}
{%- endmacro %}

{% macro default__not_materialized() -%}
    not materialized
{%- endmacro %}

{% macro spark__not_materialized() -%}
{%- endmacro %}
