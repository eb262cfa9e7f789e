-- Top vendors by sales, with their scorecard
select vendor_id, vendor_name, gross_sales_cents, refund_rate, average_rating
from analytics.agg_vendor_scorecards
order by gross_sales_cents desc
limit 20;
