-- One step of the simulated marketplace, from {start} to {start} + {hours} hours (a day, or an
-- hour). Set-based. Parameters: {stream} (a number per step, mixed into every random stream),
-- {day} (the day the step falls in, 1, 2, ... since init), {label} (the step in names: the day,
-- or the day and hour), {start}, {hours}, {fraction} ({hours} / 24: every rate below is a
-- day's, scaled to the step), {new_category} (true once a day: the seasonal category),
-- {new_vendors} {new_customers} {new_listings} {new_orders}.

-- the simulator's record of the application's hard deletes (made here too for a simulation
-- created before the record existed)
create table if not exists sim.deletions (
    table_name text not null,
    row_id bigint not null,
    deleted_on_day integer not null,
    primary key (table_name, row_id)
);

-- sign-ups
insert into vendors (
    id, display_name, vendor_type, email, phone, street_address, city, postal_code, country_code,
    commission_rate, created_at, updated_at
)
select
    b.base + g,
    sim.pick(sim.last_names(), sim.u(11, b.base + g)) || ' Finds',
    case when sim.u(13, b.base + g) < 0.6 then 'individual' else 'consignment' end,
    'vendor' || (b.base + g) || '@shop.net',
    m.dial_code || ' ' || lpad(floor(sim.u(15, b.base + g) * 1e9)::bigint::text, 9, '0'),
    sim.street(sim.u(16, b.base + g), sim.u(17, b.base + g)),
    sim.pick(m.cities, sim.u(18, b.base + g)),
    sim.postal_code(m.country_code, sim.u(19, b.base + g)),
    m.country_code,
    0.1000,
    t.at,
    t.at
from (select coalesce(max(id), 0) as base from vendors) as b
cross join generate_series(1, {new_vendors}) as g
join sim.markets as m on m.market = sim.market(sim.u(10, b.base + g))
cross join lateral (select timestamptz '{start}' + interval '{hours} hours' * sim.u(21, b.base + g) as at) as t;

insert into customers (
    id, email, first_name, last_name, phone, street_address, city, postal_code, country_code,
    marketing_opt_in, created_at, updated_at
)
select
    b.base + g,
    lower(n.first_name) || '.' || lower(n.last_name) || (b.base + g) || '@mail.com',
    n.first_name,
    n.last_name,
    m.dial_code || ' ' || lpad(floor(sim.u(33, b.base + g) * 1e9)::bigint::text, 9, '0'),
    sim.street(sim.u(34, b.base + g), sim.u(35, b.base + g)),
    sim.pick(m.cities, sim.u(36, b.base + g)),
    sim.postal_code(m.country_code, sim.u(37, b.base + g)),
    m.country_code,
    sim.u(38, b.base + g) < 0.4,
    n.at,
    n.at
from (select coalesce(max(id), 0) as base from customers) as b
cross join generate_series(1, {new_customers}) as g
join sim.markets as m on m.market = sim.market(sim.u(30, b.base + g))
cross join lateral (
    select
        sim.pick(sim.first_names(), sim.u(31, b.base + g)) as first_name,
        sim.pick(sim.last_names(), sim.u(39, b.base + g)) as last_name,
        timestamptz '{start}' + interval '{hours} hours' * sim.u(40, b.base + g) as at
) as n;

-- new listings, from existing vendors
insert into listings (
    id, vendor_id, category_id, title, item_condition, price_cents, currency, status, listed_at,
    created_at, updated_at
)
select
    b.base + g,
    v.id,
    9 + floor(sim.u(53, b.base + g) * 40)::integer,
    sim.pick(array['Vintage', 'Retro', 'Classic', 'Handmade'], sim.u(54, b.base + g)) || ' '
        || sim.pick(array['lamp', 'armchair', 'jacket', 'camera', 'novel', 'teapot'], sim.u(55, b.base + g)),
    sim.pick(array['new', 'like_new', 'good', 'fair'], sim.u(56, b.base + g)),
    (round(exp(ln(300) + sim.u(57, b.base + g) * ln(150))))::bigint,
    m.currency,
    'active',
    t.at,
    t.at,
    t.at
from (select coalesce(max(id), 0) as base from listings) as b
cross join (select max(id) as vendor_count from vendors) as vc
cross join generate_series(1, {new_listings}) as g
join vendors as v on v.id = 1 + floor(sim.u(50, b.base + g) * vc.vendor_count)::bigint
join sim.markets as m on m.country_code = v.country_code
cross join lateral (select timestamptz '{start}' + interval '{hours} hours' * sim.u(51, b.base + g) as at) as t;

-- transitions of orders placed before today (one step per order per day at most)
create temporary table transition on commit drop as
select
    o.id,
    o.status as old_status,
    case
        when o.status = 'placed' and sim.u(200 + {stream} * 1000, o.id) < 0.1 * {fraction} then 'cancelled'
        when o.status = 'placed' and sim.u(200 + {stream} * 1000, o.id) < 0.9 * {fraction} then 'paid'
        when o.status = 'paid' and o.fulfillment_method = 'shipping' and sim.u(201 + {stream} * 1000, o.id) < 0.7 * {fraction} then 'shipped'
        when o.status = 'paid' and o.fulfillment_method = 'pickup' and sim.u(201 + {stream} * 1000, o.id) < 0.5 * {fraction} then 'picked_up'
        when o.status = 'shipped' and sim.u(202 + {stream} * 1000, o.id) < 0.5 * {fraction} then 'delivered'
        when o.status in ('delivered', 'picked_up')
            and o.updated_at > timestamptz '{start}' - interval '30 days'
            and sim.u(203 + {stream} * 1000, o.id) < 0.01 * {fraction} then 'refunded'
    end as new_status,
    timestamptz '{start}' + interval '{hours} hours' * sim.u(204 + {stream} * 1000, o.id) as at
from orders as o
where o.status in ('placed', 'paid', 'shipped', 'delivered', 'picked_up') and o.placed_at < timestamptz '{start}';

analyze transition;

delete from transition where new_status is null;

update orders as o
set status = t.new_status, updated_at = t.at
from transition as t
where t.id = o.id;

insert into payments (
    id, order_id, provider_reference, payment_method, status, amount_cents, currency, paid_at,
    created_at, updated_at
)
select
    b.base + row_number() over (order by t.id),
    t.id,
    'pay_' || md5('{seed}:' || t.id),
    sim.pick(array['card', 'card', 'paypal', 'wallet'], sim.u(80, t.id)),
    'captured',
    o.total_cents,
    o.currency,
    t.at,
    t.at,
    t.at
from transition as t
join orders as o on o.id = t.id
cross join (select coalesce(max(id), 0) as base from payments) as b
where t.new_status = 'paid';

insert into shipments (id, order_id, carrier, tracking_number, status, shipped_at, delivered_at, created_at, updated_at)
select
    b.base + row_number() over (order by t.id),
    t.id,
    c.carrier,
    upper(left(c.carrier, 3)) || lpad(t.id::text, 10, '0'),
    'in_transit',
    t.at,
    null,
    t.at,
    t.at
from transition as t
cross join (select coalesce(max(id), 0) as base from shipments) as b
cross join lateral (select sim.pick(array['DHL', 'UPS', 'PostNord', 'Royal Mail', 'USPS'], sim.u(90, t.id)) as carrier) as c
where t.new_status = 'shipped';

update shipments as s
set status = 'delivered', delivered_at = t.at, updated_at = t.at
from transition as t
where t.id = s.order_id and t.new_status = 'delivered';

insert into refunds (id, order_id, payment_id, amount_cents, reason, refunded_at, created_at, updated_at)
select
    b.base + row_number() over (order by t.id),
    t.id,
    p.id,
    p.amount_cents,
    sim.pick(array['not_as_described', 'damaged', 'changed_mind'], sim.u(101, t.id)),
    t.at,
    t.at,
    t.at
from transition as t
join (select distinct on (order_id) id, order_id, amount_cents from payments order by order_id, id) as p on p.order_id = t.id
cross join (select coalesce(max(id), 0) as base from refunds) as b
where t.new_status = 'refunded';

update payments as p
set status = 'refunded', updated_at = t.at
from transition as t
where t.id = p.order_id and t.new_status = 'refunded';

update listings as l
set status = 'active', updated_at = t.at
from transition as t
join order_items as i on i.order_id = t.id
where t.new_status = 'cancelled' and l.id = i.listing_id and l.status = 'sold';

-- new orders, each buying active listings in the customer's market
create temporary table new_order on commit drop as
select
    b.base + g as id,
    c.id as customer_id,
    m.market,
    m.currency,
    timestamptz '{start}' + interval '{hours} hours' * sim.u(61, b.base + g) as placed_at,
    case when sim.u(62, b.base + g) < 0.3 then 'pickup' else 'shipping' end as fulfillment_method,
    case when sim.u(65, b.base + g) < 0.7 then 'paid' else 'placed' end as status
from (select coalesce(max(id), 0) as base from orders) as b
cross join (select max(id) as customer_count from customers) as cc
cross join generate_series(1, {new_orders}) as g
join customers as c on c.id = 1 + floor(power(sim.u(60, b.base + g), 1.6) * cc.customer_count)::bigint
join sim.markets as m on m.country_code = c.country_code
where c.created_at < timestamptz '{start}' + interval '{hours} hours';

analyze new_order;

create temporary table new_item on commit drop as
with wanted as (
    select o.*, row_number() over (partition by o.market order by o.id) as market_rank
    from new_order as o
),
available as (
    select l.*, m.market, row_number() over (partition by m.market order by sim.u(300 + {stream} * 1000, l.id), l.id) as market_rank
    from listings as l
    join sim.markets as m on m.currency = l.currency
    where l.status = 'active' and l.listed_at < timestamptz '{start}'
)
select w.id as order_id, w.placed_at, a.id as listing_id, a.vendor_id, a.price_cents
from wanted as w
join available as a on a.market = w.market and a.market_rank = w.market_rank;

analyze new_item;

update listings as l
set status = 'sold', updated_at = i.placed_at
from new_item as i
where i.listing_id = l.id;

insert into orders (
    id, customer_id, status, fulfillment_method, currency, subtotal_cents, shipping_cents,
    total_cents, placed_at, created_at, updated_at
)
select
    o.id,
    o.customer_id,
    o.status,
    o.fulfillment_method,
    o.currency,
    i.price_cents,
    case when o.fulfillment_method = 'shipping' then 495 else 0 end,
    i.price_cents + case when o.fulfillment_method = 'shipping' then 495 else 0 end,
    o.placed_at,
    o.placed_at,
    o.placed_at + case when o.status = 'paid' then interval '5 minutes' else interval '0' end
from new_order as o
join new_item as i on i.order_id = o.id;

insert into order_items (id, order_id, listing_id, vendor_id, quantity, unit_price_cents, created_at, updated_at)
select b.base + row_number() over (order by i.order_id), i.order_id, i.listing_id, i.vendor_id, 1, i.price_cents, i.placed_at, i.placed_at
from new_item as i
cross join (select coalesce(max(id), 0) as base from order_items) as b;

insert into payments (
    id, order_id, provider_reference, payment_method, status, amount_cents, currency, paid_at,
    created_at, updated_at
)
select
    b.base + row_number() over (order by o.id),
    o.id,
    'pay_' || md5('{seed}:' || o.id),
    sim.pick(array['card', 'card', 'paypal', 'wallet'], sim.u(80, o.id)),
    'captured',
    o.total_cents,
    o.currency,
    o.updated_at,
    o.updated_at,
    o.updated_at
from orders as o
join new_order as n on n.id = o.id
cross join (select coalesce(max(id), 0) as base from payments) as b
where o.status = 'paid';

insert into order_status_events (id, order_id, status, occurred_at, created_at)
select b.base + row_number() over (order by e.occurred_at, e.order_id, e.status), e.order_id, e.status, e.occurred_at, e.occurred_at
from (
    select t.id as order_id, t.new_status as status, t.at as occurred_at from transition as t
    union all
    select o.id, 'placed', o.placed_at from orders as o join new_order as n on n.id = o.id
    union all
    select o.id, 'paid', o.updated_at from orders as o join new_order as n on n.id = o.id where o.status = 'paid'
) as e
cross join (select coalesce(max(id), 0) as base from order_status_events) as b;

-- reviews of recently completed orders
insert into reviews (id, order_id, customer_id, vendor_id, rating, body, created_at, updated_at)
select
    b.base + row_number() over (order by o.id),
    o.id,
    o.customer_id,
    fi.vendor_id,
    (1 + floor(power(sim.u(110, o.id), 0.35) * 5))::smallint,
    'Reviewed on day {label}.',
    timestamptz '{start}' + interval '{hours} hours' * sim.u(111, o.id),
    timestamptz '{start}' + interval '{hours} hours' * sim.u(111, o.id)
from orders as o
join (select distinct on (order_id) order_id, vendor_id from order_items order by order_id, id) as fi on fi.order_id = o.id
cross join (select coalesce(max(id), 0) as base from reviews) as b
where o.status in ('delivered', 'picked_up')
    and o.updated_at < timestamptz '{start}'
    and not exists (select from reviews as r where r.order_id = o.id)
    and sim.u(205 + {stream} * 1000, o.id) < 0.05 * {fraction};

-- price changes, withdrawals and hard deletes of listings
update listings
set price_cents = greatest(100, round(price_cents * 0.9)), updated_at = timestamptz '{start}' + interval '{hours} hours' * sim.u(206 + {stream} * 1000, id)
where status = 'active' and sim.u(207 + {stream} * 1000, id) < 0.01 * {fraction};

update listings
set status = 'withdrawn', updated_at = timestamptz '{start}' + interval '{hours} hours' * sim.u(208 + {stream} * 1000, id)
where status = 'active' and sim.u(209 + {stream} * 1000, id) < 0.003 * {fraction};

with deleted as (
    delete from listings as l
    where l.status = 'withdrawn'
        and sim.u(210 + {stream} * 1000, l.id) < 0.05 * {fraction}
        and not exists (select from order_items as i where i.listing_id = l.id)
        and not exists (select from sim.defects as d where d.table_name = 'listings' and d.row_id = l.id)
    returning l.id
)
insert into sim.deletions (table_name, row_id, deleted_on_day)
select 'listings', id, {day} from deleted;

-- customers move and change their email; vendors renegotiate commission
update customers
set
    street_address = sim.street(sim.u(211 + {stream} * 1000, id), sim.u(212 + {stream} * 1000, id)),
    postal_code = sim.postal_code(country_code, sim.u(213 + {stream} * 1000, id)),
    updated_at = timestamptz '{start}' + interval '{hours} hours' * sim.u(214 + {stream} * 1000, id)
where sim.u(215 + {stream} * 1000, id) < 0.003 * {fraction};

update customers as c
set
    email = lower(c.first_name) || '.' || lower(c.last_name) || c.id || '.d{label}@inbox.org',
    updated_at = timestamptz '{start}' + interval '{hours} hours' * sim.u(216 + {stream} * 1000, c.id)
where sim.u(217 + {stream} * 1000, c.id) < 0.001 * {fraction}
    and not exists (select from sim.defects as d where d.table_name = 'customers' and d.row_id = c.id);

update vendors
set commission_rate = round((0.05 + sim.u(218 + {stream} * 1000, id) * 0.15)::numeric, 4),
    updated_at = timestamptz '{start}' + interval '{hours} hours' * sim.u(219 + {stream} * 1000, id)
where sim.u(220 + {stream} * 1000, id) < 0.002 * {fraction};

-- the application's other hard deletes: a seasonal category opened for the day and retired the
-- next day (nobody lists in it), customer accounts closed before a first order. Vendors, orders,
-- money rows and reviews are never deleted: they carry sales history (and a review that existed
-- on a date is part of the features as of that date).
-- Never the newest row of a table (ids are max + n, so a deleted maximum would be handed out
-- again) and never a row the defect record points at.
insert into categories (id, parent_id, name, slug, created_at, updated_at)
select
    b.base + 1,
    1 + floor(sim.u(240 + {stream} * 1000, b.base + 1) * 8)::integer,
    'Seasonal picks, day {label}',
    'seasonal-day-{label}',
    timestamptz '{start}' + interval '{hours} hours' * sim.u(241 + {stream} * 1000, b.base + 1),
    timestamptz '{start}' + interval '{hours} hours' * sim.u(241 + {stream} * 1000, b.base + 1)
from (select max(id) as base from categories) as b
where {new_category};

with deleted as (
    delete from categories as c
    where c.slug like 'seasonal-%'
        and c.id < (select max(id) from categories)
        and not exists (select from listings as l where l.category_id = c.id)
        and not exists (select from categories as k where k.parent_id = c.id)
    returning c.id
)
insert into sim.deletions (table_name, row_id, deleted_on_day)
select 'categories', id, {day} from deleted;

with deleted as (
    delete from customers as c
    where c.id < (select max(id) from customers)
        and sim.u(243 + {stream} * 1000, c.id) < 0.002 * {fraction}
        and not exists (select from orders as o where o.customer_id = c.id)
        and not exists (select from reviews as r where r.customer_id = c.id)
        and not exists (select from sim.defects as d where d.table_name = 'customers' and d.row_id = c.id)
    returning c.id
)
insert into sim.deletions (table_name, row_id, deleted_on_day)
select 'customers', id, {day} from deleted;
