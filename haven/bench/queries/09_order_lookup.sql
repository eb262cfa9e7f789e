-- Point lookup: one order and its payment
\set order_id random(1, :orders)
select
    o.order_id, o.order_status, o.total_cents, p.payment_method, p.paid_at,
    (select count(*) from analytics.fct_order_items as i where i.order_id = o.order_id) as items
from analytics.fct_orders as o
left join analytics.fct_payments as p on p.order_id = o.order_id
where o.order_id = :order_id;
