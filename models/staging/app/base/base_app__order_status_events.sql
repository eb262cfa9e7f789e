with

source as {{ not_materialized() }} (

    -- append-only: no updates, no deletes
    select * from {{ source('app', 'order_status_events') }}

),

latest as (

    {{ latest_version('source', newest_first=['_dlt_load_id']) }}

),

renamed as (

    select
        id as order_status_event_id,
        order_id,
        status as order_status,
        occurred_at,
        created_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at
    from latest

),

checked as (

    select
        *,
        {{ quarantine_reasons({
            'OCCURRED_IN_FUTURE': "occurred_at > loaded_at + interval '1 day'",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
