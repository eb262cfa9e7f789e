with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'vendors') }}
    where _haven_deleted_at is null

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as vendor_id,
        display_name as vendor_name,
        vendor_type,
        {{ mask_pii('email', 'email') }} as email_hash,
        city,
        {{ mask_pii('postal_code', 'postal_code') }} as postal_area,
        {{ as_text('country_code') }} as country_code,
        commission_rate,
        created_at,
        updated_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at
    from latest

),

checked as (

    select
        *,
        {{ quarantine_reasons({
            'VENDOR_TYPE_UNKNOWN': "vendor_type not in ('individual', 'consignment', 'reseller')",
            'COMMISSION_OUT_OF_RANGE': "commission_rate < 0 or commission_rate > 1",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
