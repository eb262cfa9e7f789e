{{ config(indexes=[{'columns': ['customer_id', 'as_of_date'], 'unique': true}]) }}

-- Point in time: a feature as of day D uses only events that happened before D (order placed,
-- refund issued, review written). Current statuses are never read: an order refunded after D
-- counts as not refunded on D. Customers come from their SCD2 history, so an account closed (hard
-- deleted) later still has its features as of the dates when it existed.

with

as_of_dates as (

    select as_of_date from {{ ref('ml_feature_dates') }}

),

customers as (

    select distinct on (customer_id)
        customer_id,
        created_at
    from {{ ref('snp_customers') }}
    order by customer_id asc, dbt_valid_from asc

),

orders as (

    select
        order_id,
        customer_id,
        placed_at,
        total_cents
    from {{ ref('stg_app__orders') }}

),

cancellations as (

    select
        order_id,
        min(occurred_at) as cancelled_at
    from {{ ref('stg_app__order_status_events') }}
    where order_status = 'cancelled'
    group by order_id

),

refunds as (

    select
        order_id,
        refunded_at,
        amount_cents
    from {{ ref('stg_app__refunds') }}

),

reviews as (

    select
        customer_id,
        reviewed_at,
        rating
    from {{ ref('stg_app__reviews') }}

),

items as (

    select
        order_items.order_id,
        listings.category_id
    from {{ ref('stg_app__order_items') }} as order_items
    inner join {{ source('app', 'listings') }} as listings on order_items.listing_id = listings.id

),

eligible as (

    select
        customers.customer_id,
        customers.created_at,
        as_of_dates.as_of_date
    from customers
    inner join as_of_dates on customers.created_at < as_of_dates.as_of_date

),

order_history as (

    select
        eligible.customer_id,
        eligible.as_of_date,
        count(orders.order_id) as orders_count,
        count(orders.order_id) filter (
            where orders.placed_at >= eligible.as_of_date - interval '90 days'
        ) as orders_last_90_days,
        coalesce(sum(orders.total_cents) filter (
            where cancellations.cancelled_at is null or cancellations.cancelled_at >= eligible.as_of_date
        ), 0) as monetary_value_cents,
        max(orders.placed_at) as last_order_at,
        min(orders.placed_at) as first_order_at
    from eligible
    left join orders
        on
            eligible.customer_id = orders.customer_id
            and eligible.as_of_date > orders.placed_at
    left join cancellations
        on orders.order_id = cancellations.order_id
    group by eligible.customer_id, eligible.as_of_date

),

refund_history as (

    select
        eligible.customer_id,
        eligible.as_of_date,
        count(distinct refunds.order_id) as refunded_orders
    from eligible
    inner join orders
        on
            eligible.customer_id = orders.customer_id
            and eligible.as_of_date > orders.placed_at
    inner join refunds
        on
            orders.order_id = refunds.order_id
            and eligible.as_of_date > refunds.refunded_at
    group by eligible.customer_id, eligible.as_of_date

),

review_history as (

    select
        eligible.customer_id,
        eligible.as_of_date,
        count(*) as reviews_written,
        avg(reviews.rating)::numeric(4, 2) as average_rating_given
    from eligible
    inner join reviews
        on
            eligible.customer_id = reviews.customer_id
            and eligible.as_of_date > reviews.reviewed_at
    group by eligible.customer_id, eligible.as_of_date

),

category_counts as (

    select
        eligible.customer_id,
        eligible.as_of_date,
        items.category_id,
        count(*) as items_bought
    from eligible
    inner join orders
        on
            eligible.customer_id = orders.customer_id
            and eligible.as_of_date > orders.placed_at
    inner join items on orders.order_id = items.order_id
    group by eligible.customer_id, eligible.as_of_date, items.category_id

),

favourite_category as (

    select distinct on (customer_id, as_of_date)
        customer_id,
        as_of_date,
        category_id
    from category_counts
    order by customer_id asc, as_of_date asc, items_bought desc, category_id asc

),

final as (

    select
        eligible.customer_id,
        eligible.as_of_date,
        (eligible.as_of_date - eligible.created_at::date) as tenure_days,
        (eligible.as_of_date - order_history.last_order_at::date) as recency_days,
        order_history.orders_count as frequency,
        order_history.orders_last_90_days,
        order_history.monetary_value_cents,
        order_history.first_order_at,
        order_history.last_order_at,
        coalesce(refund_history.refunded_orders, 0) as refunded_orders,
        round(
            coalesce(refund_history.refunded_orders::numeric / nullif(order_history.orders_count, 0), 0), 4
        ) as refund_rate,
        coalesce(review_history.reviews_written, 0) as reviews_written,
        review_history.average_rating_given,
        favourite_category.category_id as favourite_category_id
    from eligible
    inner join order_history
        on
            eligible.customer_id = order_history.customer_id
            and eligible.as_of_date = order_history.as_of_date
    left join refund_history
        on
            eligible.customer_id = refund_history.customer_id
            and eligible.as_of_date = refund_history.as_of_date
    left join review_history
        on
            eligible.customer_id = review_history.customer_id
            and eligible.as_of_date = review_history.as_of_date
    left join favourite_category
        on
            eligible.customer_id = favourite_category.customer_id
            and eligible.as_of_date = favourite_category.as_of_date

)

select * from final
