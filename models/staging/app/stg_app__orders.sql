with

base as (

    select * from {{ ref('base_app__orders') }}

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
