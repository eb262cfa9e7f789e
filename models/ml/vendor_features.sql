{{ config(indexes=[{'columns': ['vendor_id', 'as_of_date'], 'unique': true}]) }}

-- Point in time, like customer_features: only what happened before as_of_date.

with

as_of_dates as (

    select as_of_date from {{ ref('ml_feature_dates') }}

),

vendors as (

    select
        vendor_id,
        created_at
    from {{ ref('stg_app__vendors') }}

),

items as (

    select
        order_items.order_id,
        order_items.vendor_id,
        order_items.line_total_cents,
        orders.placed_at
    from {{ ref('stg_app__order_items') }} as order_items
    inner join {{ ref('stg_app__orders') }} as orders on order_items.order_id = orders.order_id

),

shipments as (

    select
        order_id,
        shipped_at
    from {{ ref('stg_app__shipments') }}

),

refunds as (

    select
        order_id,
        refunded_at
    from {{ ref('stg_app__refunds') }}

),

reviews as (

    select
        vendor_id,
        reviewed_at,
        rating
    from {{ ref('stg_app__reviews') }}

),

eligible as (

    select
        vendors.vendor_id,
        vendors.created_at,
        as_of_dates.as_of_date
    from vendors
    inner join as_of_dates on vendors.created_at < as_of_dates.as_of_date

),

sales as (

    select
        eligible.vendor_id,
        eligible.as_of_date,
        count(distinct items.order_id) as orders_count,
        coalesce(sum(items.line_total_cents), 0) as gross_sales_cents,
        count(distinct items.order_id) filter (
            where items.placed_at >= eligible.as_of_date - interval '30 days'
        ) as orders_last_30_days,
        percentile_cont(0.5) within group (
            order by extract(epoch from shipments.shipped_at - items.placed_at) / 3600.0
        ) filter (where shipments.shipped_at < eligible.as_of_date) as median_hours_to_ship,
        count(distinct items.order_id) filter (where refunds.refunded_at < eligible.as_of_date) as refunded_orders
    from eligible
    left join items
        on
            eligible.vendor_id = items.vendor_id
            and eligible.as_of_date > items.placed_at
    left join shipments on items.order_id = shipments.order_id
    left join refunds on items.order_id = refunds.order_id
    group by eligible.vendor_id, eligible.as_of_date

),

ratings as (

    select
        eligible.vendor_id,
        eligible.as_of_date,
        count(*) as reviews_count,
        avg(reviews.rating)::numeric(4, 2) as average_rating
    from eligible
    inner join reviews
        on
            eligible.vendor_id = reviews.vendor_id
            and eligible.as_of_date > reviews.reviewed_at
    group by eligible.vendor_id, eligible.as_of_date

),

final as (

    select
        eligible.vendor_id,
        eligible.as_of_date,
        (eligible.as_of_date - eligible.created_at::date) as tenure_days,
        sales.orders_count,
        sales.orders_last_30_days,
        sales.gross_sales_cents,
        sales.median_hours_to_ship,
        round(coalesce(sales.refunded_orders::numeric / nullif(sales.orders_count, 0), 0), 4) as refund_rate,
        coalesce(ratings.reviews_count, 0) as reviews_count,
        ratings.average_rating
    from eligible
    inner join sales
        on
            eligible.vendor_id = sales.vendor_id
            and eligible.as_of_date = sales.as_of_date
    left join ratings
        on
            eligible.vendor_id = ratings.vendor_id
            and eligible.as_of_date = ratings.as_of_date

)

select * from final
