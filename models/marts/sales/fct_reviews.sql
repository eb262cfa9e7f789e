{%- set changed = changed_keys('reviews') -%}
{{
    config(
        unique_key='review_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['review_id'], 'unique': true},
            {'columns': ['vendor_id', 'reviewed_at']},
        ],
    )
}}

with

reviews as (

    select * from {{ ref('stg_app__reviews') }}
    {% if is_incremental() %}
        where {{ in_change_set('review_id', changed) }}
    {% endif %}

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
        cast(reviewed_at as date) as reviewed_date
    from reviews

)

select * from final
