{{ config(materialized='table') }}

with

bounds as (

    select
        (select min(placed_at)::date from {{ ref('stg_app__orders') }}) - 400 as first_date,
        (select max(placed_at)::date from {{ ref('stg_app__orders') }}) + 400 as last_date

),

spine as (

    select generate_series(first_date, last_date, interval '1 day')::date as date_day
    from bounds

),

final as (

    select
        date_day,
        extract(isodow from date_day)::integer as day_of_week,
        to_char(date_day, 'Dy') as day_name,
        extract(isodow from date_day) in (6, 7) as is_weekend,
        date_trunc('week', date_day)::date as week_start_date,
        date_trunc('month', date_day)::date as month_start_date,
        to_char(date_day, 'YYYY-MM') as month_label,
        extract(quarter from date_day)::integer as quarter_of_year,
        extract(year from date_day)::integer as calendar_year
    from spine

)

select * from final
