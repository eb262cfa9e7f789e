{% macro quarantine_reasons(rules) -%}
    {#- rules: reason code -> SQL condition that is true when a row breaks the rule.
        Returns the codes a row breaks, comma-separated ('' when it passes): text rather than an
        array, so dbt unit tests can state expected codes. -#}
    {{ return(adapter.dispatch('quarantine_reasons', 'clutter_haven')(rules)) }}
{%- endmacro %}

{% macro default__quarantine_reasons(rules) -%}
    array_to_string(array_remove(
        array[
            {%- for code, condition in rules.items() %}
            case when {{ condition }} then '{{ code }}' end{{ "," if not loop.last }}
            {%- endfor %}
        ]::text [],
        null
    ), ',')
{%- endmacro %}

{% macro spark__quarantine_reasons(rules) -%}
    {#- concat_ws skips nulls: the same text, '' when no rule is broken. -#}
    concat_ws(
        ','
        {%- for code, condition in rules.items() %},
        case when {{ condition }} then '{{ code }}' end
        {%- endfor %}
    )
{%- endmacro %}
