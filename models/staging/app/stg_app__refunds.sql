{%- set changed = staged_changed_keys('refunds') -%}
{{
    config(
        unique_key='refund_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['refund_id'], 'unique': true},
            {'columns': ['order_id']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__refunds') }}
    {% if is_incremental() %}
        where {{ in_change_set('refund_id', changed, through_views=true) }}
    {% endif %}

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
