with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'payments') }}
    where _haven_deleted_at is null

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as payment_id,
        order_id,
        provider_reference,
        payment_method,
        status as payment_status,
        amount_cents,
        {{ as_text('currency') }} as currency_code,
        paid_at,
        created_at,
        updated_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at,
        -- the payment provider's reference is unique per charge: a second row with it (a later
        -- id) is a duplicate; a lookup, not a window, so a build that reads a few payments
        -- checks only theirs
        {{ has_earlier_row('source', 'latest', 'provider_reference', 'id') }} as is_duplicate_charge
    from latest

),

checked as (

    select
        *,
        {{ quarantine_reasons({
            'AMOUNT_NEGATIVE': "amount_cents < 0",
            'DUPLICATE_PROVIDER_REFERENCE': "is_duplicate_charge",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
