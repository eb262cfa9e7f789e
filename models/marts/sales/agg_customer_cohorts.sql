{#- A customer's cohort is the month of their first order; a changed customer may have moved
    between cohorts, so every month they ordered in is rebuilt. -#}
{%- set changed -%}
    select distinct cast(date_trunc('month', placed_at) as date) from {{ raw_table('orders') }}
    where {{ in_change_set('customer_id', changed_keys('customers') ~ ' union ' ~ changed_keys('orders', 'customer_id')) }}
{%- endset -%}
{#- unique_key is the partition rebuilt: every row of a cohort a changed customer was or is in -#}
{{
    config(
        unique_key='cohort_month',
        unchanged_rows_kept=true,
        changed_keys=changed,
        indexes=[
            {'columns': ['cohort_month']},
        ],
    )
}}

with

customers as (

    select
        customer_id,
        cohort_month
    from {{ ref('dim_customers') }}
    where
        cohort_month is not null
        and {{ in_change_set('cohort_month', changed) if is_incremental() else 'true' }}

),

orders as (

    select
        customer_id,
        cast(date_trunc('month', placed_at) as date) as order_month
    from {{ ref('fct_orders') }}
    where not is_cancelled

),

activity as (

    select distinct
        customers.cohort_month,
        customers.customer_id,
        cast(
            (extract(year from orders.order_month) - extract(year from customers.cohort_month)) * 12
            + extract(month from orders.order_month) - extract(month from customers.cohort_month)
            as integer
        ) as months_since_first_order
    from customers
    inner join orders on customers.customer_id = orders.customer_id

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_customers
    from customers
    group by cohort_month

),

final as (

    select
        activity.cohort_month,
        activity.months_since_first_order,
        cohort_sizes.cohort_customers,
        count(*) as active_customers,
        round(cast(count(*) as numeric) / cohort_sizes.cohort_customers, 4) as retention_rate
    from activity
    inner join cohort_sizes on activity.cohort_month = cohort_sizes.cohort_month
    group by activity.cohort_month, activity.months_since_first_order, cohort_sizes.cohort_customers

)

select * from final
