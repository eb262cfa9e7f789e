-- Retention of the last year's cohorts
select cohort_month, months_since_first_order, retention_rate
from analytics.agg_customer_cohorts
where cohort_month >= date '2025-06-01'
order by cohort_month, months_since_first_order;
