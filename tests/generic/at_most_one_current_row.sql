{% test at_most_one_current_row(model, column_name) %}
{#- An SCD2 table has at most one open (dbt_valid_to is null) version per key. -#}

select {{ column_name }}, count(*) as current_rows
from {{ model }}
where dbt_valid_to is null
group by {{ column_name }}
having count(*) > 1

{% endtest %}
