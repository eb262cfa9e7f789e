{%- set changed = changed_vendors() -%}
-- depends_on: {{ ref('snp_listings') }}
{{
    config(
        unique_key=['vendor_id', 'as_of_date'],
        unchanged_rows_kept=true,
        changed_keys=as_of_rows_to_rebuild('vendor_id', changed),
        as_of_dates='ml_feature_dates',
        indexes=[
            {'columns': ['vendor_id', 'as_of_date'], 'unique': true},
            {'columns': ['as_of_date']},
        ],
    )
}}
{#- Like customer_features: the change set's vendors as of every date, every vendor as of a new
    date. -#}
{%- set new_dates = dates_not_built(ref('ml_feature_dates'), 'as_of_date')
    if is_incremental() and execute else [] -%}
{%- set only_changed = is_incremental() and execute and not new_dates -%}

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
    {% if only_changed %}
        where {{ in_change_set('vendor_id', changed) }}
    {% endif %}

),

items as (

    select
        order_items.order_id,
        order_items.vendor_id,
        order_items.line_total_cents,
        orders.placed_at
    from {{ ref('stg_app__order_items') }} as order_items
    inner join {{ ref('stg_app__orders') }} as orders on order_items.order_id = orders.order_id
    {% if only_changed %}
        where {{ in_change_set('order_items.vendor_id', changed) }}
    {% endif %}

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
    {% if only_changed %}
        where {{ in_change_set('vendor_id', changed) }}
    {% endif %}

),

-- every event before an as-of date that a feature counts: an item sold (with its order's
-- shipment and refunds), a review received
events as (

    select
        items.vendor_id,
        items.placed_at as occurred_at,
        'item' as event_kind,
        items.order_id,
        items.placed_at,
        items.line_total_cents,
        shipments.shipped_at,
        refunds.refunded_at,
        cast(null as bigint) as rating
    from items
    left join shipments on items.order_id = shipments.order_id
    left join refunds on items.order_id = refunds.order_id

    union all

    select
        vendor_id,
        reviewed_at as occurred_at,
        'review' as event_kind,
        null as order_id,
        null as placed_at,
        null as line_total_cents,
        null as shipped_at,
        null as refunded_at,
        rating
    from reviews

),

eligible as (

    select
        vendors.vendor_id,
        vendors.created_at,
        as_of_dates.as_of_date
    from vendors
    inner join as_of_dates on vendors.created_at < as_of_dates.as_of_date
    {% if new_dates %}
        where
            as_of_dates.as_of_date in ({{ new_dates | join(', ') }})
            or {{ in_change_set('vendors.vendor_id', changed) }}
    {% endif %}

),

-- one aggregation per (vendor, as-of date) over the events before that date
history as (

    select
        eligible.vendor_id,
        eligible.as_of_date,
        eligible.created_at,
        count(distinct events.order_id) filter (where events.event_kind = 'item') as orders_count,
        coalesce(sum(events.line_total_cents) filter (where events.event_kind = 'item'), 0) as gross_sales_cents,
        count(distinct events.order_id) filter (
            where events.event_kind = 'item' and events.placed_at >= eligible.as_of_date - interval '30 days'
        ) as orders_last_30_days,
        percentile_cont(0.5) within group (
            order by {{ hours_between('events.placed_at', 'events.shipped_at') }}
        ) filter (
            where events.event_kind = 'item' and events.shipped_at < eligible.as_of_date
        ) as median_hours_to_ship,
        count(distinct events.order_id) filter (
            where events.event_kind = 'item' and events.refunded_at < eligible.as_of_date
        ) as refunded_orders,
        count(*) filter (where events.event_kind = 'review') as reviews_count,
        cast(avg(events.rating) filter (where events.event_kind = 'review') as numeric(4, 2)) as average_rating
    from eligible
    left join events
        on
            eligible.vendor_id = events.vendor_id
            and eligible.as_of_date > events.occurred_at
    group by eligible.vendor_id, eligible.as_of_date, eligible.created_at

),

final as (

    select
        vendor_id,
        as_of_date,
        {{ dbt.datediff('created_at', 'as_of_date', 'day') }} as tenure_days,  -- noqa: LT05
        orders_count,
        orders_last_30_days,
        gross_sales_cents,
        median_hours_to_ship,
        round(coalesce(cast(refunded_orders as numeric) / nullif(orders_count, 0), 0), 4) as refund_rate,
        reviews_count,
        average_rating
    from history

)

select * from final
