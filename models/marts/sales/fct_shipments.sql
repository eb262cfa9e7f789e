with

shipments as (

    select * from {{ ref('stg_app__shipments') }}

),

final as (

    select
        shipment_id,
        order_id,
        carrier,
        shipment_status,
        shipped_at,
        delivered_at,
        extract(epoch from delivered_at - shipped_at) / 3600.0 as hours_in_transit
    from shipments

)

select * from final
