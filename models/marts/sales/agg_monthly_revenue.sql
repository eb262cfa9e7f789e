{%- set changed = changed_order_dates('month') -%}
-- depends_on: {{ ref('snp_listings') }}
{#- unique_key is the partition rebuilt: every row of a month in which an order changed -#}
{{
    config(
        unique_key='sale_month',
        unchanged_rows_kept=true,
        changed_keys=changed,
        indexes=[
            {'columns': ['sale_month']},
        ],
    )
}}

with

daily as (

    select * from {{ ref('agg_daily_sales') }}
    {% if is_incremental() %}
        where {{ in_change_set("cast(date_trunc('month', sale_date) as date)", changed) }}
    {% endif %}

),

final as (

    select
        cast(date_trunc('month', sale_date) as date) as sale_month,
        currency_code,
        sum(orders_count) as orders_count,
        sum(items_sold) as items_sold,
        sum(gross_sales_cents) as gross_sales_cents
    from daily
    group by 1, 2

)

select * from final
