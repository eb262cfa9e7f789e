{%- set changed = changed_keys('payments') -%}
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

payments as (

    select * from {{ ref('stg_app__payments') }}
    {% if is_incremental() %}
        where {{ in_change_set('payment_id', changed) }}
    {% endif %}

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
        cast(paid_at as date) as paid_date
    from payments

)

select * from final
