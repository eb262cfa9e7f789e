-- A vendor's latest reviews
\set vendor random(1, :vendors)
select review_id, rating, reviewed_at
from analytics.fct_reviews
where vendor_id = :vendor
order by reviewed_at desc
limit 20;
