with

base as (

    select * from {{ ref('base_app__reviews') }}

),

final as (

    select
        review_id,
        order_id,
        customer_id,
        vendor_id,
        rating,
        review_body,
        reviewed_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
