with

base as (

    select * from {{ ref('base_app__order_items') }}

),

final as (

    select
        order_item_id,
        order_id,
        listing_id,
        vendor_id,
        quantity,
        unit_price_cents,
        line_total_cents,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
