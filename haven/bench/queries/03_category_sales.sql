-- One category's sales by currency over the last quarter
\set category random(9, 48)
select currency_code, sum(items_sold) as items, sum(gross_sales_cents) as gross_sales_cents
from analytics.agg_daily_sales
where category_id = :category and sale_date >= date '2026-06-01' - 90
group by currency_code;
