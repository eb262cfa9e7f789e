{%- set changed -%}
    select distinct cast(placed_at as date) from {{ raw_table('orders') }} where {{ changed_since_last_build('orders') }}
{%- endset -%}
{#- unique_key is the partition rebuilt: every row of a day on which an order changed -#}
{{
    config(
        unique_key='placed_date',
        unchanged_rows_kept=true,
        changed_keys=changed,
        indexes=[
            {'columns': ['placed_date']},
        ],
    )
}}

with

orders as (

    select * from {{ ref('fct_orders') }}
    {% if is_incremental() %}
        where {{ in_change_set('placed_date', changed) }}
    {% endif %}

),

final as (

    select
        placed_date,
        order_status,
        currency_code,
        count(*) as orders_count,
        sum(total_cents) as total_cents
    from orders
    group by placed_date, order_status, currency_code

)

select * from final
