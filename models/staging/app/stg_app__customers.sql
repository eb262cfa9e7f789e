with

base as (

    select * from {{ ref('base_app__customers') }}

),

final as (

    select
        customer_id,
        email_hash,
        city,
        postal_area,
        country_code,
        has_marketing_opt_in,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
