{%- set changed -%}
    {{ changed_keys('refunds') }}
    union
    select id from {{ raw_table('refunds') }} where {{ in_change_set('order_id', changed_keys('orders')) }}
{%- endset -%}
{{
    config(
        unique_key='refund_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['refund_id'], 'unique': true},
            {'columns': ['refunded_date']},
        ],
    )
}}

with

refunds as (

    select * from {{ ref('stg_app__refunds') }}
    {% if is_incremental() %}
        where {{ in_change_set('refund_id', changed) }}
    {% endif %}

),

orders as (

    select
        order_id,
        customer_id,
        currency_code
    from {{ ref('stg_app__orders') }}

),

final as (

    select
        refunds.refund_id,
        refunds.order_id,
        refunds.payment_id,
        orders.customer_id,
        refunds.refund_reason,
        refunds.amount_cents,
        orders.currency_code,
        refunds.refunded_at,
        cast(refunds.refunded_at as date) as refunded_date
    from refunds
    inner join orders on refunds.order_id = orders.order_id

)

select * from final
