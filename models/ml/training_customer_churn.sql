{%- set changed = changed_customers() -%}
{%- set labelled_dates -%}
    (
        select as_of_date from {{ ref('ml_feature_dates') }}
        where as_of_date + {{ var('churn_window_days') }} <= (
            select cast(max(loaded_at) as date) from {{ ref('stg_app__orders') }}
        )
    )
{%- endset -%}
-- depends_on: {{ ref('snp_listings') }}
{{
    config(
        unique_key=['customer_id', 'as_of_date'],
        unchanged_rows_kept=true,
        changed_keys=as_of_rows_to_rebuild('customer_id', changed),
        as_of_dates='ml_feature_dates',
        indexes=[
            {'columns': ['customer_id', 'as_of_date'], 'unique': true},
            {'columns': ['as_of_date']},
        ],
    )
}}
{#- An incremental run computes the customers of its change set as of every labelled date, and
    every customer as of a date labelled since the last run (a label window closed, a new month
    of data); rows of dates that left the feature dates go (as_of_rows_to_rebuild: a date once
    labelled stays labelled while it is a feature date, the loads only move forward). -#}
{%- set new_dates = dates_not_built(labelled_dates, 'as_of_date')
    if is_incremental() and execute else [] -%}
{%- set only_changed = is_incremental() and execute and not new_dates -%}
{%- if only_changed -%}
    {%- set rows_to_compute = in_change_set('customer_id', changed) -%}
{%- elif new_dates -%}
    {%- set rows_to_compute = '(as_of_date in (' ~ new_dates | join(', ') ~ ') or '
        ~ in_change_set('customer_id', changed) ~ ')' -%}
{%- else -%}
    {%- set rows_to_compute = 'true' -%}
{%- endif -%}

-- Training set: customer features as of D with the label "churned": no order in the
-- churn window after D. Only as-of dates whose whole label window has been observed are used,
-- and only customers who had bought before D.

with

features as (

    -- every feature (on Spark without the table's key partition, dbt_partition)
    select {{ star(ref('customer_features'), except=['dbt_partition']) }}
    from {{ ref('customer_features') }}
    where
        frequency > 0
        and {{ rows_to_compute }}

),

orders as (

    select
        customer_id,
        placed_at
    from {{ ref('stg_app__orders') }}
    {% if only_changed %}
        where {{ in_change_set('customer_id', changed) }}
    {% endif %}

),

observed_until as (

    select cast(max(loaded_at) as date) as observed_date from {{ ref('stg_app__orders') }}

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
