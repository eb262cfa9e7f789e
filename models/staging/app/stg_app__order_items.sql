{%- set changed = staged_changed_keys('order_items') -%}
{{
    config(
        unique_key='order_item_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['order_item_id'], 'unique': true},
            {'columns': ['order_id']},
            {'columns': ['vendor_id']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__order_items') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_item_id', changed, through_views=true) }}
    {% endif %}

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
