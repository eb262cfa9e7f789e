{%- set changed = staged_changed_keys('reviews') -%}
{{
    config(
        unique_key='review_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['review_id'], 'unique': true},
            {'columns': ['customer_id']},
            {'columns': ['vendor_id']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__reviews') }}
    {% if is_incremental() %}
        where {{ in_change_set('review_id', changed, through_views=true) }}
    {% endif %}

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
