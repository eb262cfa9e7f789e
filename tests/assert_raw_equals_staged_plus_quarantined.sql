-- For every application table: live raw rows = staged rows + quarantined rows. Returns the
-- tables where that does not hold (a row was dropped or counted twice).
{%- set tables = [
    'categories', 'vendors', 'customers', 'listings', 'orders', 'order_items', 'payments',
    'shipments', 'refunds', 'reviews', 'order_status_events',
] %}

with

{% for table in tables %}
    {{ table }}_counts as (

        select
            '{{ table }}' as source_table,
            (
                select count(*) from {{ source('app', table) }}
                {%- if table != 'order_status_events' %} where _haven_deleted_at is null{% endif %}
            ) as raw_rows,
            (select count(*) from {{ ref('stg_app__' ~ table) }}) as staged_rows,
            (
                select count(*) from {{ ref('quarantined_rows') }}
                where source_table = '{{ table }}'
            ) as quarantined_rows

    ),

{% endfor %}
all_counts as (

    {% for table in tables %}
        select * from {{ table }}_counts
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select *
from all_counts
where raw_rows != staged_rows + quarantined_rows
