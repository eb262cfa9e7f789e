{% test expect_column_values_to_be_between(model, column_name, min_value=none, max_value=none, strictly=false, row_condition=none) %}
{#- dbt-expectations' test of the same name and arguments, written here (no package hub). -#}
{%- set low = ">" if strictly else ">=" -%}
{%- set high = "<" if strictly else "<=" -%}

with

checked as (

    select {{ column_name }} as value
    from {{ model }}
    where {{ column_name }} is not null
    {%- if row_condition %} and {{ row_condition }}{% endif %}

)

select *
from checked
where
    false
    {%- if min_value is not none %} or not (value {{ low }} {{ min_value }}){% endif %}
    {%- if max_value is not none %} or not (value {{ high }} {{ max_value }}){% endif %}

{% endtest %}
