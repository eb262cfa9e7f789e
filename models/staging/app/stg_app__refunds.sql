with

base as (

    select * from {{ ref('base_app__refunds') }}

),

final as (

    select
        refund_id,
        order_id,
        payment_id,
        amount_cents,
        refund_reason,
        refunded_at,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
