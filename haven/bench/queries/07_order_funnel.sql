-- Order funnel of the last 30 days
select order_status, sum(orders_count) as orders, sum(total_cents) as total_cents
from analytics.agg_daily_order_status
where placed_date >= date '2026-06-01' - 30
group by order_status
order by orders desc;
