{% test relationships_unless_quarantined(model, column_name, to, field, quarantine, parent_table) %}
{#- dbt's relationships test, except for children of a parent row that is in quarantine: those
    are expected to be missing from the parent model (the child itself passed its own checks). -#}

with child as (

    select * from {{ model }}

)

select child.{{ column_name }}
from child
left join {{ to }} as parent on child.{{ column_name }} = parent.{{ field }}
where
    child.{{ column_name }} is not null
    and parent.{{ field }} is null
    and child.{{ column_name }} not in (
        select quarantined.source_key
        from {{ quarantine }} as quarantined
        where quarantined.source_table = '{{ parent_table }}'
    )

{% endtest %}
