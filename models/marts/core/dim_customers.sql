{%- set changed -%}
    {{ changed_keys('customers') }}
    union
    {{ changed_keys('orders', 'customer_id') }}
{%- endset -%}
{{
    config(
        unique_key='customer_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['customer_id'], 'unique': true},
            {'columns': ['cohort_month']},
        ],
    )
}}

with

customers as (

    select * from {{ ref('stg_app__customers') }}
    {% if is_incremental() %}
        where {{ in_change_set('customer_id', changed) }}
    {% endif %}

),

orders as (

    select * from {{ ref('stg_app__orders') }}
    where
        order_status <> 'cancelled'
        and {{ in_change_set('customer_id', changed) if is_incremental() else 'true' }}

),

order_summary as (

    select
        customer_id,
        min(placed_at) as first_order_at,
        max(placed_at) as last_order_at,
        count(*) as lifetime_orders,
        sum(total_cents) as lifetime_value_cents
    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.email_hash,
        customers.city,
        customers.postal_area,
        customers.country_code,
        customers.has_marketing_opt_in,
        customers.created_at as signed_up_at,
        cast(date_trunc('month', customers.created_at) as date) as signup_month,
        order_summary.first_order_at,
        order_summary.last_order_at,
        cast(date_trunc('month', order_summary.first_order_at) as date) as cohort_month,
        coalesce(order_summary.lifetime_orders, 0) as lifetime_orders,
        coalesce(order_summary.lifetime_value_cents, 0) as lifetime_value_cents
    from customers
    left join order_summary on customers.customer_id = order_summary.customer_id

)

select * from final
