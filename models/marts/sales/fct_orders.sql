{%- set changed = changed_orders() -%}
{{
    config(
        unique_key='order_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['order_id'], 'unique': true},
            {'columns': ['customer_id', 'placed_at']},
            {'columns': ['placed_date']},
        ],
    )
}}

with

orders as (

    select * from {{ ref('stg_app__orders') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_id', changed) }}
    {% endif %}

),

order_items as (

    select * from {{ ref('stg_app__order_items') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_id', changed) }}
    {% endif %}

),

payments as (

    select * from {{ ref('stg_app__payments') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_id', changed) }}
    {% endif %}

),

refunds as (

    select * from {{ ref('stg_app__refunds') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_id', changed) }}
    {% endif %}

),

shipments as (

    select * from {{ ref('stg_app__shipments') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_id', changed) }}
    {% endif %}

),

item_totals as (

    select
        order_id,
        count(*) as items_count,
        count(distinct vendor_id) as vendors_count
    from order_items
    group by order_id

),

payment_totals as (

    select
        order_id,
        sum(amount_cents) as paid_cents,
        min(paid_at) as paid_at
    from payments
    group by order_id

),

refund_totals as (

    select
        order_id,
        sum(amount_cents) as refunded_cents,
        min(refunded_at) as refunded_at
    from refunds
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_status,
        orders.fulfillment_method,
        orders.currency_code,
        orders.subtotal_cents,
        orders.shipping_cents,
        orders.total_cents,
        coalesce(payment_totals.paid_cents, 0) as paid_cents,
        coalesce(refund_totals.refunded_cents, 0) as refunded_cents,
        orders.total_cents - coalesce(refund_totals.refunded_cents, 0) as net_revenue_cents,
        coalesce(item_totals.items_count, 0) as items_count,
        coalesce(item_totals.vendors_count, 0) as vendors_count,
        orders.placed_at,
        cast(orders.placed_at as date) as placed_date,
        payment_totals.paid_at,
        shipments.shipped_at,
        shipments.delivered_at,
        refund_totals.refunded_at,
        orders.order_status = 'cancelled' as is_cancelled,
        refund_totals.order_id is not null as is_refunded,
        {{ hours_between('orders.placed_at', 'shipments.shipped_at') }} as hours_to_ship,
        orders.updated_at as source_updated_at
    from orders
    left join item_totals on orders.order_id = item_totals.order_id
    left join payment_totals on orders.order_id = payment_totals.order_id
    left join refund_totals on orders.order_id = refund_totals.order_id
    left join shipments on orders.order_id = shipments.order_id

)

select * from final
