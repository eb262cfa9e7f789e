with

base as (

    select * from {{ ref('base_app__payments') }}

),

final as (

    select
        payment_id,
        order_id,
        provider_reference,
        payment_method,
        payment_status,
        amount_cents,
        currency_code,
        paid_at,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
