with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'order_items') }}
    where _haven_deleted_at is null

),

listing_keys as (

    -- deleted listings included: an item of a listing deleted later is not an orphan
    select id from {{ source('app', 'listings') }}

),

order_keys as (

    select id from {{ source('app', 'orders') }}

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as order_item_id,
        order_id,
        listing_id,
        vendor_id,
        quantity,
        unit_price_cents,
        quantity * unit_price_cents as line_total_cents,
        created_at,
        updated_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at
    from latest

),

checked as (

    select
        renamed.*,
        {{ quarantine_reasons({
            'LISTING_UNKNOWN': "listing_keys.id is null",
            'ORDER_UNKNOWN': "order_keys.id is null",
            'UNIT_PRICE_NEGATIVE': "renamed.unit_price_cents < 0",
            'QUANTITY_NOT_POSITIVE': "renamed.quantity <= 0",
        }) }} as quarantine_reasons
    from renamed
    left join listing_keys on renamed.listing_id = listing_keys.id
    left join order_keys on renamed.order_id = order_keys.id

)

select * from checked
