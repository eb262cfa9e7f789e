with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'reviews') }}
    where _haven_deleted_at is null

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as review_id,
        order_id,
        customer_id,
        vendor_id,
        rating,
        body as review_body,
        created_at as reviewed_at,
        updated_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at
    from latest

),

checked as (

    select
        *,
        {{ quarantine_reasons({
            'RATING_OUT_OF_RANGE': "rating not between 1 and 5",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
