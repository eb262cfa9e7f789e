{% macro split_text(expression, separator) -%}
    {#- Text cut at a separator into an array of text. -#}
    {{ return(adapter.dispatch('split_text', 'clutter_haven')(expression, separator)) }}
{%- endmacro %}

{% macro default__split_text(expression, separator) -%}
    string_to_array({{ expression }}, '{{ separator }}')
{%- endmacro %}

{% macro spark__split_text(expression, separator) -%}
    split({{ expression }}, '{{ separator }}')
{%- endmacro %}
