{%- set changed = staged_changed_keys('payments') -%}
{{
    config(
        unique_key='payment_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['payment_id'], 'unique': true},
            {'columns': ['order_id']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__payments') }}
    {% if is_incremental() %}
        where {{ in_change_set('payment_id', changed, through_views=true) }}
    {% endif %}

),

final as (

    select
        payment_id,
        order_id,
        provider_reference,
        payment_method,
        payment_status,
        amount_cents,
        currency_code,
        paid_at,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
