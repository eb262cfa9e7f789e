{%- set email_pattern = '^[a-z0-9._%+-]+@[a-z0-9.-]+[.][a-z]{2,}$' -%}
with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'customers') }}
    where _haven_deleted_at is null

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as customer_id,
        email is null as is_email_missing,
        not {{ matches_pattern('trim(email)', email_pattern) }} as is_email_malformed,
        {{ mask_pii('email', 'email') }} as email_hash,
        city,
        {{ mask_pii('postal_code', 'postal_code') }} as postal_area,
        {{ as_text('country_code') }} as country_code,
        marketing_opt_in as has_marketing_opt_in,
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
            'EMAIL_MISSING': "is_email_missing",
            'EMAIL_MALFORMED': "is_email_malformed",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
