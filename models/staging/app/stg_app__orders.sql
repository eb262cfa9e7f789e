{%- set changed = staged_changed_keys('orders') -%}
{{
    config(
        unique_key='order_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['order_id'], 'unique': true},
            {'columns': ['customer_id']},
            {'columns': ['placed_at']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__orders') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_id', changed, through_views=true) }}
    {% endif %}

),

final as (

    select
        order_id,
        customer_id,
        order_status,
        fulfillment_method,
        currency_code,
        subtotal_cents,
        shipping_cents,
        total_cents,
        placed_at,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
