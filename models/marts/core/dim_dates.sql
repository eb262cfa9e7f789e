{{ config(materialized='table') }}

with

bounds as (

    select
        (select cast(min(placed_at) as date) from {{ ref('stg_app__orders') }}) - 400 as first_date,
        (select cast(max(placed_at) as date) from {{ ref('stg_app__orders') }}) + 400 as last_date

),

spine as (

    select {{ date_series('first_date', 'last_date', 'day') }} as date_day
    from bounds

),

final as (

    select
        date_day,
        {{ iso_day_of_week('date_day') }} as day_of_week,
        {{ format_date('date_day', 'Dy') }} as day_name,
        {{ iso_day_of_week('date_day') }} in (6, 7) as is_weekend,
        cast(date_trunc('week', date_day) as date) as week_start_date,
        cast(date_trunc('month', date_day) as date) as month_start_date,
        {{ format_date('date_day', 'YYYY-MM') }} as month_label,
        cast(extract(quarter from date_day) as integer) as quarter_of_year,
        cast(extract(year from date_day) as integer) as calendar_year
    from spine

)

select * from final
