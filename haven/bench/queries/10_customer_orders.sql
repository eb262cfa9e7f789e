-- A customer's latest orders
\set customer random(1, :customers)
select order_id, placed_at, order_status, total_cents
from analytics.fct_orders
where customer_id = :customer
order by placed_at desc
limit 20;
