-- Training set: customer features as of D with the label "churned": no order in the
-- churn window after D. Only as-of dates whose whole label window has been observed are used,
-- and only customers who had bought before D.

with

features as (

    select * from {{ ref('customer_features') }}
    where frequency > 0

),

orders as (

    select
        customer_id,
        placed_at
    from {{ ref('stg_app__orders') }}

),

observed_until as (

    select max(loaded_at)::date as observed_date from {{ ref('stg_app__orders') }}

),

labelled_dates as (

    select features.*
    from features
    cross join observed_until
    where features.as_of_date + {{ var('churn_window_days') }} <= observed_until.observed_date

),

orders_in_window as (

    select
        labelled_dates.customer_id,
        labelled_dates.as_of_date,
        count(*) as future_orders
    from labelled_dates
    inner join orders
        on
            labelled_dates.customer_id = orders.customer_id
            and labelled_dates.as_of_date <= orders.placed_at
            and orders.placed_at < labelled_dates.as_of_date + {{ var('churn_window_days') }}
    group by labelled_dates.customer_id, labelled_dates.as_of_date

),

final as (

    select
        labelled_dates.*,
        orders_in_window.customer_id is null as is_churned
    from labelled_dates
    left join orders_in_window
        on
            labelled_dates.customer_id = orders_in_window.customer_id
            and labelled_dates.as_of_date = orders_in_window.as_of_date

)

select * from final
