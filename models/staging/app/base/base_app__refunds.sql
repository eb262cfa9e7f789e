with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'refunds') }}
    where _haven_deleted_at is null

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as refund_id,
        order_id,
        payment_id,
        amount_cents,
        reason as refund_reason,
        refunded_at,
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
            'AMOUNT_NOT_POSITIVE': "amount_cents <= 0",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
