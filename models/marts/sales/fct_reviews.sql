{{ config(indexes=[{'columns': ['vendor_id', 'reviewed_at']}]) }}

with

reviews as (

    select * from {{ ref('stg_app__reviews') }}

),

final as (

    select
        review_id,
        order_id,
        customer_id,
        vendor_id,
        rating,
        review_body is not null as has_text,
        reviewed_at,
        reviewed_at::date as reviewed_date
    from reviews

)

select * from final
