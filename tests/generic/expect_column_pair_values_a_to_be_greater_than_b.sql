{% test expect_column_pair_values_A_to_be_greater_than_B(model, column_A, column_B, or_equal=false, row_condition=none) %}
{#- dbt-expectations' test of the same name and arguments, written here (no package hub). -#}
{%- set operator = ">=" if or_equal else ">" -%}

select *
from {{ model }}
where
    {{ column_A }} is not null
    and {{ column_B }} is not null
    and not ({{ column_A }} {{ operator }} {{ column_B }})
    {%- if row_condition %} and {{ row_condition }}{% endif %}

{% endtest %}
