{%- set changed = staged_changed_keys('listings') -%}
{{
    config(
        unique_key='listing_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['listing_id'], 'unique': true},
            {'columns': ['vendor_id']},
            {'columns': ['category_id']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__listings') }}
    {% if is_incremental() %}
        where {{ in_change_set('listing_id', changed, through_views=true) }}
    {% endif %}

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
