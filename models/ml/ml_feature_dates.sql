{{ config(materialized='table') }}

-- The dates features are computed as of: the first day of each of the last twelve months of data.
with

bounds as (

    select cast(date_trunc('month', max(placed_at)) as date) as last_as_of
    from {{ ref('stg_app__orders') }}
    where placed_at <= (select max(loads.loaded_at) from {{ ref('stg_app__orders') }} as loads)

),

final as (

    select {{ date_series("last_as_of - interval '11 months'", 'last_as_of', 'month') }} as as_of_date
    from bounds

)

select * from final
