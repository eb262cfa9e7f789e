-- Revenue by month and currency over the last year
select sale_month, currency_code, gross_sales_cents, orders_count
from analytics.agg_monthly_revenue
where sale_month >= date '2026-06-01' - 365
order by sale_month, currency_code;
