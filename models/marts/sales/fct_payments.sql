{{ config(indexes=[{'columns': ['order_id']}]) }}

with

payments as (

    select * from {{ ref('stg_app__payments') }}

),

final as (

    select
        payment_id,
        order_id,
        payment_method,
        payment_status,
        amount_cents,
        currency_code,
        paid_at,
        paid_at::date as paid_date
    from payments

)

select * from final
