{%- set changed = changed_vendors() -%}
-- depends_on: {{ ref('snp_listings') }}
{{
    config(
        unique_key='vendor_id',
        unchanged_rows_kept=true,
        changed_keys=changed,
        indexes=[
            {'columns': ['vendor_id'], 'unique': true},
            {'columns': ['gross_sales_cents']},
        ],
    )
}}

with

vendors as (

    select * from {{ ref('dim_vendors') }}
    {% if is_incremental() %}
        where {{ in_change_set('vendor_id', changed) }}
    {% endif %}

),

items as (

    select * from {{ ref('fct_order_items') }}
    {% if is_incremental() %}
        where {{ in_change_set('vendor_id', changed) }}
    {% endif %}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

reviews as (

    select * from {{ ref('fct_reviews') }}
    {% if is_incremental() %}
        where {{ in_change_set('vendor_id', changed) }}
    {% endif %}

),

vendor_orders as (

    select distinct
        items.vendor_id,
        orders.*
    from items
    inner join orders on items.order_id = orders.order_id

),

sales as (

    select
        vendor_id,
        count(*) as orders_count,
        count(*) filter (where is_cancelled) as cancelled_orders,
        count(*) filter (where is_refunded) as refunded_orders,
        percentile_cont(0.5) within group (order by hours_to_ship) as median_hours_to_ship
    from vendor_orders
    group by vendor_id

),

revenue as (

    select
        vendor_id,
        sum(line_total_cents) as gross_sales_cents
    from items
    group by vendor_id

),

ratings as (

    select
        vendor_id,
        count(*) as reviews_count,
        cast(avg(rating) as numeric(4, 2)) as average_rating
    from reviews
    group by vendor_id

),

final as (

    select
        vendors.vendor_id,
        vendors.vendor_name,
        vendors.vendor_type,
        vendors.country_code,
        coalesce(sales.orders_count, 0) as orders_count,
        coalesce(revenue.gross_sales_cents, 0) as gross_sales_cents,
        round(
            coalesce(cast(sales.cancelled_orders as numeric) / nullif(sales.orders_count, 0), 0), 4
        ) as cancellation_rate,
        round(
            coalesce(cast(sales.refunded_orders as numeric) / nullif(sales.orders_count, 0), 0), 4
        ) as refund_rate,
        sales.median_hours_to_ship,
        coalesce(ratings.reviews_count, 0) as reviews_count,
        ratings.average_rating
    from vendors
    left join sales on vendors.vendor_id = sales.vendor_id
    left join revenue on vendors.vendor_id = revenue.vendor_id
    left join ratings on vendors.vendor_id = ratings.vendor_id

)

select * from final
