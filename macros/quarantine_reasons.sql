{% macro quarantine_reasons(rules) -%}
    {#- rules: reason code -> SQL condition that is true when a row breaks the rule.
        Returns the text[] of codes a row breaks (empty when it passes). -#}
    array_remove(
        array[
            {%- for code, condition in rules.items() %}
            case when {{ condition }} then '{{ code }}' end{{ "," if not loop.last }}
            {%- endfor %}
        ]::text [],
        null
    )
{%- endmacro %}
