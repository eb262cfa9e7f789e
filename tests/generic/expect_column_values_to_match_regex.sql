{% test expect_column_values_to_match_regex(model, column_name, regex, row_condition=none, is_raw=false, flags="") %}
{#- dbt-expectations' test of the same name and arguments, written here (no package hub).
    PostgreSQL regular expressions; flags "i" makes the match case-insensitive. -#}
{%- set operator = "~*" if "i" in flags else "~" -%}

select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and not ({{ column_name }} {{ operator }} '{{ regex }}')
    {%- if row_condition %} and {{ row_condition }}{% endif %}

{% endtest %}
