with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'listings') }}
    where _haven_deleted_at is null

),

currencies as (

    select * from {{ ref('currencies') }}

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as listing_id,
        vendor_id,
        category_id,
        title as listing_title,
        item_condition,
        price_cents,
        {{ as_text('currency') }} as currency_code,
        status as listing_status,
        listed_at,
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
            'TITLE_MISSING': "renamed.listing_title is null",
            'PRICE_NEGATIVE': "renamed.price_cents < 0",
            'CURRENCY_UNKNOWN': "currencies.currency_code is null",
        }) }} as quarantine_reasons
    from renamed
    left join currencies on renamed.currency_code = currencies.currency_code

)

select * from checked
