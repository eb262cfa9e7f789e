{%- set changed = staged_changed_keys('order_status_events') -%}
{{
    config(
        unique_key='order_status_event_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['order_status_event_id'], 'unique': true},
            {'columns': ['order_id']},
        ],
    )
}}

with

base as (

    select * from {{ ref('base_app__order_status_events') }}
    {% if is_incremental() %}
        where {{ in_change_set('order_status_event_id', changed, through_views=true) }}
    {% endif %}

),

final as (

    select
        order_status_event_id,
        order_id,
        order_status,
        occurred_at,
        created_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
