with

daily as (

    select * from {{ ref('agg_daily_sales') }}

),

final as (

    select
        date_trunc('month', sale_date)::date as sale_month,
        currency_code,
        sum(orders_count) as orders_count,
        sum(items_sold) as items_sold,
        sum(gross_sales_cents) as gross_sales_cents
    from daily
    group by 1, 2

)

select * from final
