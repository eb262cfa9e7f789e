-- One vendor's daily sales over the last quarter
\set vendor random(1, :vendors)
select sale_date, sum(orders_count) as orders, sum(gross_sales_cents) as gross_sales_cents
from analytics.agg_daily_sales
where vendor_id = :vendor and sale_date >= date '2026-06-01' - 90
group by sale_date
order by sale_date;
