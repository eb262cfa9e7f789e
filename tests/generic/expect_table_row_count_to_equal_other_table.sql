{% test expect_table_row_count_to_equal_other_table(model, compare_model, row_condition=none, compare_row_condition=none) %}
{#- dbt-expectations' test of the same name and arguments, written here (no package hub). -#}

with

counts as (

    select
        (select count(*) from {{ model }}{% if row_condition %} where {{ row_condition }}{% endif %}) as row_count,
        (
            select count(*) from {{ compare_model }}
            {%- if compare_row_condition %} where {{ compare_row_condition }}{% endif %}
        ) as compare_row_count

)

select *
from counts
where row_count != compare_row_count

{% endtest %}
