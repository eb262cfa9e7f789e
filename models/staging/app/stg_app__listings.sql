with

base as (

    select * from {{ ref('base_app__listings') }}

),

final as (

    select
        listing_id,
        vendor_id,
        category_id,
        listing_title,
        item_condition,
        price_cents,
        currency_code,
        listing_status,
        listed_at,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
