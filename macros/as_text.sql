{% macro as_text(expression) -%}
    {#- A value (an enum, a char(n)) as text: PostgreSQL's text, Spark's string. Not
        dbt.type_string(), which is varchar on PostgreSQL and would change existing columns. -#}
    {{ return(adapter.dispatch('as_text', 'clutter_haven')(expression)) }}
{%- endmacro %}

{% macro default__as_text(expression) -%}
    {{ expression }}::text
{%- endmacro %}

{% macro spark__as_text(expression) -%}
    cast({{ expression }} as string)
{%- endmacro %}
