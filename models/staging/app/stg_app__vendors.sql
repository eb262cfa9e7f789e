with

base as (

    select * from {{ ref('base_app__vendors') }}

),

final as (

    select
        vendor_id,
        vendor_name,
        vendor_type,
        email_hash,
        city,
        postal_area,
        country_code,
        commission_rate,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
