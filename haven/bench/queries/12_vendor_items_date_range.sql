-- A vendor's items sold in a date range
\set vendor random(1, :vendors)
select placed_date, count(*) as items, sum(line_total_cents) as sales_cents
from analytics.fct_order_items
where vendor_id = :vendor and placed_date between date '2026-03-01' and date '2026-05-31'
group by placed_date
order by placed_date;
