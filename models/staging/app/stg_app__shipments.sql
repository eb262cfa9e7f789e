with

base as (

    select * from {{ ref('base_app__shipments') }}

),

final as (

    select
        shipment_id,
        order_id,
        carrier,
        tracking_number,
        shipment_status,
        shipped_at,
        delivered_at,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
