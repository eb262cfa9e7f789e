{%- set changed = changed_customers() -%}
-- depends_on: {{ ref('snp_listings') }}
{{
    config(
        unique_key='customer_id',
        unchanged_rows_kept=true,
        changed_keys=changed,
        indexes=[{'columns': ['customer_id', 'as_of_date'], 'unique': true}],
    )
}}
{#- Every customer is recomputed when the labelled as-of dates change (a label window closed, or
    a new month of data). -#}
{%- set labelled_dates -%}
    (
        select as_of_date from {{ ref('ml_feature_dates') }}
        where as_of_date + {{ var('churn_window_days') }} <= (
            select cast(max(loaded_at) as date) from {{ ref('stg_app__orders') }}
        )
    ) as labelled
{%- endset -%}
{%- set only_changed = is_incremental() and execute
    and not moved_since_last_build(labelled_dates, 'as_of_date') -%}

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
        and {{ in_change_set('customer_id', changed) if only_changed else 'true' }}

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
