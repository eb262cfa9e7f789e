{%- set changed = changed_order_dates('day') -%}
-- depends_on: {{ ref('snp_listings') }}
{#- unique_key is the partition rebuilt: every row of a day on which an order changed -#}
{{
    config(
        unique_key='sale_date',
        unchanged_rows_kept=true,
        changed_keys=changed,
        indexes=[
            {'columns': ['sale_date']},
            {'columns': ['vendor_id', 'sale_date']},
            {'columns': ['category_id', 'sale_date']},
        ],
    )
}}

with

order_items as (

    select * from {{ ref('fct_order_items') }}
    {% if is_incremental() %}
        where {{ in_change_set('placed_date', changed) }}
    {% endif %}

),

orders as (

    select
        order_id,
        is_cancelled
    from {{ ref('fct_orders') }}

),

final as (

    select
        order_items.placed_date as sale_date,
        order_items.vendor_id,
        order_items.category_id,
        order_items.currency_code,
        count(distinct order_items.order_id) as orders_count,
        count(*) as items_sold,
        sum(order_items.line_total_cents) as gross_sales_cents
    from order_items
    inner join orders on order_items.order_id = orders.order_id
    where not orders.is_cancelled
    group by 1, 2, 3, 4

)

select * from final
