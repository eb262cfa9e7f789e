{% test no_overlapping_validity(model, column_name) %}
{#- An SCD2 table's versions of one key never overlap: each starts where the previous ended or later. -#}

with

ordered as (

    select
        {{ column_name }} as entity_key,
        dbt_valid_from,
        dbt_valid_to,
        lead(dbt_valid_from) over (partition by {{ column_name }} order by dbt_valid_from) as next_valid_from
    from {{ model }}

)

select *
from ordered
where
    dbt_valid_to is null and next_valid_from is not null
    or dbt_valid_to > next_valid_from
    or dbt_valid_to < dbt_valid_from

{% endtest %}
