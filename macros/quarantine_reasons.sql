{% macro quarantine_reasons(rules) -%}
    {#- rules: reason code -> SQL condition that is true when a row breaks the rule.
        Returns the codes a row breaks, comma-separated ('' when it passes): text rather than an
        array, so dbt unit tests can state expected codes. -#}
    array_to_string(array_remove(
        array[
            {%- for code, condition in rules.items() %}
            case when {{ condition }} then '{{ code }}' end{{ "," if not loop.last }}
            {%- endfor %}
        ]::text [],
        null
    ), ',')
{%- endmacro %}
