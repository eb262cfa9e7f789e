with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'shipments') }}
    where _haven_deleted_at is null

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as shipment_id,
        order_id,
        carrier,
        tracking_number,
        status as shipment_status,
        shipped_at,
        delivered_at,
        created_at,
        updated_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at
    from latest

),

checked as (

    select
        *,
        {{ quarantine_reasons({
            'DELIVERED_BEFORE_SHIPPED': "delivered_at < shipped_at",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
