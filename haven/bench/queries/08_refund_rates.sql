-- Refunds by reason over the last two weeks
select refund_reason, count(*) as refunds, sum(amount_cents) as refunded_cents
from analytics.fct_refunds
where refunded_date >= date '2026-06-01' - 14
group by refund_reason;
