{%- set changed = staged_changed_keys('shipments') -%}
{{
    config(
        unique_key='shipment_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['shipment_id'], 'unique': true},
            {'columns': ['order_id']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__shipments') }}
    {% if is_incremental() %}
        where {{ in_change_set('shipment_id', changed, through_views=true) }}
    {% endif %}

),

final as (

    select
        shipment_id,
        order_id,
        carrier,
        tracking_number,
        shipment_status,
        shipped_at,
        delivered_at,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
