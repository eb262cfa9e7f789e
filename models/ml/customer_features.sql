{%- set changed = changed_customers() -%}
-- depends_on: {{ ref('snp_listings') }}
{{
    config(
        unique_key=['customer_id', 'as_of_date'],
        unchanged_rows_kept=true,
        changed_keys=as_of_rows_to_rebuild('customer_id', changed),
        as_of_dates='ml_feature_dates',
        indexes=[
            {'columns': ['customer_id', 'as_of_date'], 'unique': true},
            {'columns': ['as_of_date']},
        ],
    )
}}
{#- An incremental run computes the customers of its change set as of every date, and every
    customer as of the dates it holds no row for (a new month of data); rows of dates that left
    the window go (as_of_rows_to_rebuild). -#}
{%- set new_dates = dates_not_built(ref('ml_feature_dates'), 'as_of_date')
    if is_incremental() and execute else [] -%}
{%- set only_changed = is_incremental() and execute and not new_dates -%}

-- Point in time: a feature as of day D uses only events that happened before D (order placed,
-- refund issued, review written). Current statuses are never read: an order refunded after D
-- counts as not refunded on D. Customers come from their SCD2 history, so an account closed (hard
-- deleted) later still has its features as of the dates when it existed.

with

as_of_dates as (

    select as_of_date from {{ ref('ml_feature_dates') }}

),

customers as (

    -- each customer's first version
    select
        customer_id,
        created_at
    from (
        select
            customer_id,
            created_at,
            row_number() over (partition by customer_id order by dbt_valid_from asc) as version_number
        from {{ ref('snp_customers') }}
        {% if only_changed %}
            where {{ in_change_set('customer_id', changed) }}
        {% endif %}
    ) as versions
    where version_number = 1

),

orders as (

    select
        order_id,
        customer_id,
        placed_at,
        total_cents
    from {{ ref('stg_app__orders') }}
    {% if only_changed %}
        where {{ in_change_set('customer_id', changed) }}
    {% endif %}

),

cancellations as (

    select
        order_id,
        min(occurred_at) as cancelled_at
    from {{ ref('stg_app__order_status_events') }}
    where
        order_status = 'cancelled'
        and {{ in_change_set('order_id', 'select order_id from orders') if only_changed else 'true' }}
    group by order_id

),

-- every event before an as-of date that a feature counts, one row each
events as (

    select
        orders.customer_id,
        orders.placed_at as occurred_at,
        'order' as event_kind,
        orders.order_id,
        orders.placed_at,
        orders.total_cents,
        cancellations.cancelled_at,
        cast(null as integer) as rating,
        cast(null as bigint) as category_id
    from orders
    left join cancellations on orders.order_id = cancellations.order_id

    union all

    -- a refund counts once both the order and the refund happened
    select
        orders.customer_id,
        greatest(orders.placed_at, refunds.refunded_at) as occurred_at,
        'refund' as event_kind,
        orders.order_id,
        null as placed_at,
        null as total_cents,
        null as cancelled_at,
        null as rating,
        null as category_id
    from {{ ref('stg_app__refunds') }} as refunds
    inner join orders on refunds.order_id = orders.order_id

    union all

    select
        reviews.customer_id,
        reviews.reviewed_at as occurred_at,
        'review' as event_kind,
        null as order_id,
        null as placed_at,
        null as total_cents,
        null as cancelled_at,
        reviews.rating,
        null as category_id
    from {{ ref('stg_app__reviews') }} as reviews
    {% if only_changed %}
        where {{ in_change_set('reviews.customer_id', changed) }}
    {% endif %}

    union all

    -- an item bought, with its listing's category (deleted listings included)
    select
        orders.customer_id,
        orders.placed_at as occurred_at,
        'item' as event_kind,
        orders.order_id,
        null as placed_at,
        null as total_cents,
        null as cancelled_at,
        null as rating,
        listings.category_id
    from {{ ref('stg_app__order_items') }} as order_items
    inner join orders on order_items.order_id = orders.order_id
    inner join {{ source('app', 'listings') }} as listings on order_items.listing_id = listings.id

),

eligible as (

    select
        customers.customer_id,
        customers.created_at,
        as_of_dates.as_of_date
    from customers
    inner join as_of_dates on customers.created_at < as_of_dates.as_of_date
    {% if new_dates %}
        where
            as_of_dates.as_of_date in ({{ new_dates | join(', ') }})
            or {{ in_change_set('customers.customer_id', changed) }}
    {% endif %}

),

-- one aggregation per (customer, as-of date) over the events before that date
history as (

    select
        eligible.customer_id,
        eligible.as_of_date,
        eligible.created_at,
        count(*) filter (where events.event_kind = 'order') as orders_count,
        count(*) filter (
            where events.event_kind = 'order' and events.placed_at >= eligible.as_of_date - interval '90 days'
        ) as orders_last_90_days,
        coalesce(sum(events.total_cents) filter (
            where
            events.event_kind = 'order'
            and (events.cancelled_at is null or events.cancelled_at >= eligible.as_of_date)
        ), 0) as monetary_value_cents,
        max(events.placed_at) filter (where events.event_kind = 'order') as last_order_at,
        min(events.placed_at) filter (where events.event_kind = 'order') as first_order_at,
        count(distinct events.order_id) filter (where events.event_kind = 'refund') as refunded_orders,
        count(*) filter (where events.event_kind = 'review') as reviews_written,
        cast(avg(events.rating) filter (where events.event_kind = 'review') as numeric(4, 2)) as average_rating_given,
        -- the category bought most often; on a tie the smallest id (mode() keeps the first)
        {{ most_frequent('events.category_id', "events.event_kind = 'item'") }} as favourite_category_id
    from eligible
    left join events
        on
            eligible.customer_id = events.customer_id
            and eligible.as_of_date > events.occurred_at
    group by eligible.customer_id, eligible.as_of_date, eligible.created_at

),

final as (

    select
        customer_id,
        as_of_date,
        {{ dbt.datediff('created_at', 'as_of_date', 'day') }} as tenure_days,  -- noqa: LT05
        {{ dbt.datediff('last_order_at', 'as_of_date', 'day') }} as recency_days,  -- noqa: LT05
        orders_count as frequency,
        orders_last_90_days,
        monetary_value_cents,
        first_order_at,
        last_order_at,
        refunded_orders,
        round(coalesce(cast(refunded_orders as numeric) / nullif(orders_count, 0), 0), 4) as refund_rate,
        reviews_written,
        average_rating_given,
        favourite_category_id
    from history

)

select * from final
