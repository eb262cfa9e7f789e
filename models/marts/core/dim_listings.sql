with

listings as (

    select * from {{ ref('stg_app__listings') }}

),

categories as (

    select * from {{ ref('dim_categories') }}

),

final as (

    select
        listings.listing_id,
        listings.vendor_id,
        listings.category_id,
        categories.category_name,
        categories.top_category_name,
        listings.listing_title,
        listings.item_condition,
        listings.price_cents,
        listings.currency_code,
        listings.listing_status,
        listings.listed_at,
        listings.updated_at
    from listings
    left join categories on listings.category_id = categories.category_id

)

select * from final
