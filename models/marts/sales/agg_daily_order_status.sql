{{ config(indexes=[{'columns': ['placed_date']}]) }}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

final as (

    select
        placed_date,
        order_status,
        currency_code,
        count(*) as orders_count,
        sum(total_cents) as total_cents
    from orders
    group by placed_date, order_status, currency_code

)

select * from final
