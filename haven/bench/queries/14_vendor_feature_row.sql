-- The feature row of one vendor as of a date
\set vendor random(1, :vendors)
select *
from ml.vendor_features
where vendor_id = :vendor and as_of_date = date '2026-05-01';
