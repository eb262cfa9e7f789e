-- The feature row of one customer as of a date
\set customer random(1, :customers)
select *
from ml.customer_features
where customer_id = :customer and as_of_date = date '2026-05-01';
