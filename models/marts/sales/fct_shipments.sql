{%- set changed = changed_keys('shipments') -%}
{{
    config(
        unique_key='shipment_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['shipment_id'], 'unique': true},
        ],
    )
}}

with

shipments as (

    select * from {{ ref('stg_app__shipments') }}
    {% if is_incremental() %}
        where {{ in_change_set('shipment_id', changed) }}
    {% endif %}

),

final as (

    select
        shipment_id,
        order_id,
        carrier,
        shipment_status,
        shipped_at,
        delivered_at,
        {{ hours_between('shipped_at', 'delivered_at') }} as hours_in_transit
    from shipments

)

select * from final
