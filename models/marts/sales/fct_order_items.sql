{{
    config(
        materialized='incremental',
        unique_key='order_item_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[
            {'columns': ['vendor_id', 'placed_date']},
            {'columns': ['order_id']},
        ],
        post_hook="delete from {{ this }} where order_item_id not in (select order_item_id from {{ ref('stg_app__order_items') }})",
    )
}}

with

order_items as (

    select * from {{ ref('stg_app__order_items') }}

),

orders as (

    -- only attributes an order never changes, so an item row is complete when it is written
    select
        order_id,
        customer_id,
        currency_code,
        placed_at
    from {{ ref('stg_app__orders') }}

),

listings as (

    -- the raw listing, deleted ones included: an item keeps its category after the listing goes
    select
        id as listing_id,
        category_id
    from {{ source('app', 'listings') }}

),

final as (

    select
        order_items.order_item_id,
        order_items.order_id,
        orders.customer_id,
        order_items.vendor_id,
        order_items.listing_id,
        listings.category_id,
        orders.currency_code,
        order_items.quantity,
        order_items.unit_price_cents,
        order_items.line_total_cents,
        orders.placed_at,
        orders.placed_at::date as placed_date,
        order_items.updated_at as source_updated_at
    from order_items
    inner join orders on order_items.order_id = orders.order_id
    left join listings on order_items.listing_id = listings.listing_id
    {% if is_incremental() %}
        where order_items.updated_at >= (
            select max(previous_build.source_updated_at) from {{ this }} as previous_build
        ) - interval '{{ var("incremental_lookback_days") }} days'
    {% endif %}

)

select * from final
