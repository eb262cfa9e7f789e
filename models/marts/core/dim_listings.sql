{#- a category's change (its name, its parent's name) reaches every listing in it and in its children -#}
{%- set changed_categories -%}
    {{ changed_keys('categories') }}
    union
    select id from {{ raw_table('categories') }} where {{ in_change_set('parent_id', changed_keys('categories')) }}
{%- endset -%}
{%- set changed -%}
    {{ changed_keys('listings') }}
    union
    select id from {{ raw_table('listings') }} where {{ in_change_set('category_id', changed_categories) }}
{%- endset -%}
{{
    config(
        unique_key='listing_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['listing_id'], 'unique': true},
        ],
    )
}}

with

listings as (

    select * from {{ ref('stg_app__listings') }}
    {% if is_incremental() %}
        where {{ in_change_set('listing_id', changed) }}
    {% endif %}

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
