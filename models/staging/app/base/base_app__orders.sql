with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'orders') }}
    where _haven_deleted_at is null

),

currencies as (

    select * from {{ ref('currencies') }}

),

customer_keys as (

    select id from {{ source('app', 'customers') }}

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as order_id,
        customer_id,
        status as order_status,
        fulfillment_method,
        {{ as_text('currency') }} as currency_code,
        subtotal_cents,
        shipping_cents,
        total_cents,
        placed_at,
        created_at,
        updated_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at
    from latest

),

checked as (

    select
        renamed.*,
        {{ quarantine_reasons({
            'CURRENCY_MISSING': "renamed.currency_code is null",
            'CURRENCY_UNKNOWN': "renamed.currency_code is not null and currencies.currency_code is null",
            'PLACED_IN_FUTURE': "renamed.placed_at > renamed.loaded_at + interval '1 day'",
            'TOTAL_NEGATIVE': "renamed.total_cents < 0",
            'CUSTOMER_UNKNOWN': "customer_keys.id is null",
        }) }} as quarantine_reasons
    from renamed
    left join currencies on renamed.currency_code = currencies.currency_code
    left join customer_keys on renamed.customer_id = customer_keys.id

)

select * from checked
