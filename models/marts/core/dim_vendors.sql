{%- set changed -%}
    {{ changed_keys('vendors') }}
    union
    {{ changed_keys('listings', 'vendor_id') }}
{%- endset -%}
{{
    config(
        unique_key='vendor_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['vendor_id'], 'unique': true},
        ],
    )
}}

with

vendors as (

    select * from {{ ref('stg_app__vendors') }}
    {% if is_incremental() %}
        where {{ in_change_set('vendor_id', changed) }}
    {% endif %}

),

listings as (

    select * from {{ ref('stg_app__listings') }}
    {% if is_incremental() %}
        where {{ in_change_set('vendor_id', changed) }}
    {% endif %}

),

listing_counts as (

    select
        vendor_id,
        count(*) as listings_count,
        count(*) filter (where listing_status = 'active') as active_listings_count
    from listings
    group by vendor_id

),

final as (

    select
        vendors.vendor_id,
        vendors.vendor_name,
        vendors.vendor_type,
        vendors.city,
        vendors.country_code,
        vendors.commission_rate,
        vendors.created_at as joined_at,
        coalesce(listing_counts.listings_count, 0) as listings_count,
        coalesce(listing_counts.active_listings_count, 0) as active_listings_count
    from vendors
    left join listing_counts on vendors.vendor_id = listing_counts.vendor_id

)

select * from final
