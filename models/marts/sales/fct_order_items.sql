{#- The items that changed, the items of orders that changed, and (in the body) the items whose
    listing took a category. -#}
{%- set changed -%}
    {{ changed_keys('order_items') }}
    union
    select id from {{ raw_table('order_items') }} where {{ in_change_set('order_id', changed_keys('orders')) }}
{%- endset -%}
-- depends_on: {{ ref('snp_listings') }}
{{
    config(
        unique_key='order_item_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['order_item_id'], 'unique': true},
            {'columns': ['vendor_id', 'placed_date']},
            {'columns': ['order_id']},
            {'columns': ['placed_date']},
        ],
    )
}}

with

order_items as (

    select * from {{ ref('stg_app__order_items') }}
    {% if is_incremental() %}
        where
            {{ in_change_set('order_item_id', changed) }}
            or {{ in_change_set('order_item_id', relisted_items()) }}
    {% endif %}

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
        cast(orders.placed_at as date) as placed_date,
        order_items.updated_at as source_updated_at
    from order_items
    inner join orders on order_items.order_id = orders.order_id
    left join listings on order_items.listing_id = listings.listing_id

)

select * from final
