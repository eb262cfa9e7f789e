-- One customer's lifetime value
\set customer random(1, :customers)
select customer_id, cohort_month, lifetime_orders, lifetime_value_cents
from analytics.dim_customers
where customer_id = :customer;
