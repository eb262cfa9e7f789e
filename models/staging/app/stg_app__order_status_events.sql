with

base as (

    select * from {{ ref('base_app__order_status_events') }}

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
