-- Initial history of the marketplace: two years up to the anchor, set-based, deterministic.
-- Parameters: {vendors} {customers} {listings} {orders} counts; {anchor} the simulated "now".

insert into categories (id, parent_id, name, slug, created_at, updated_at)
select
    p.ordinality,
    null,
    p.name,
    lower(replace(p.name, ' & ', '-')),
    timestamptz '{anchor}' - interval '1000 days',
    timestamptz '{anchor}' - interval '1000 days'
from unnest(array[
    'Furniture', 'Clothing', 'Electronics', 'Books & Media', 'Home & Kitchen', 'Sports & Outdoors',
    'Toys & Games', 'Collectibles'
]) with ordinality as p (name, ordinality);

insert into categories (id, parent_id, name, slug, created_at, updated_at)
select
    8 + (p.id - 1) * 5 + c.ordinality,
    p.id,
    p.name || ': ' || c.name,
    p.slug || '-' || lower(c.name),
    p.created_at,
    p.updated_at
from categories as p
cross join unnest(array['Vintage', 'Designer', 'Everyday', 'Rare', 'Bundles']) with ordinality as c (name, ordinality)
where p.parent_id is null;

insert into vendors (
    id, display_name, vendor_type, email, phone, street_address, city, postal_code, country_code,
    commission_rate, created_at, updated_at
)
select
    g,
    sim.pick(sim.last_names(), sim.u(11, g)) || ' '
        || sim.pick(array['Finds', 'Vintage', 'Resale', 'Attic', 'Corner', 'Trading'], sim.u(12, g)),
    case when sim.u(13, g) < 0.6 then 'individual' when sim.u(13, g) < 0.85 then 'consignment' else 'reseller' end,
    'vendor' || g || '@' || sim.pick(array['mail.com', 'shop.net', 'post.org'], sim.u(14, g)),
    m.dial_code || ' ' || lpad(floor(sim.u(15, g) * 1e9)::bigint::text, 9, '0'),
    sim.street(sim.u(16, g), sim.u(17, g)),
    sim.pick(m.cities, sim.u(18, g)),
    sim.postal_code(m.country_code, sim.u(19, g)),
    m.country_code,
    round((0.05 + sim.u(20, g) * 0.15)::numeric, 4),
    t.created_at,
    t.created_at
from generate_series(1, {vendors}) as g
-- the first vendors open one market each, so every market has sellers at any scale
join sim.markets as m on m.market = case when g <= 4 then g::integer else sim.market(sim.u(10, g)) end
cross join lateral (
    select timestamptz '{anchor}' - interval '730 days' * (1.0 + sim.u(21, g) * 0.5) as created_at
) as t;

insert into customers (
    id, email, first_name, last_name, phone, street_address, city, postal_code, country_code,
    marketing_opt_in, created_at, updated_at
)
select
    g,
    lower(n.first_name) || '.' || lower(n.last_name) || g || '@'
        || sim.pick(array['mail.com', 'inbox.org', 'post.net', 'web.de', 'example.co.uk'], sim.u(32, g)),
    n.first_name,
    n.last_name,
    m.dial_code || ' ' || lpad(floor(sim.u(33, g) * 1e9)::bigint::text, 9, '0'),
    sim.street(sim.u(34, g), sim.u(35, g)),
    sim.pick(m.cities, sim.u(36, g)),
    sim.postal_code(m.country_code, sim.u(37, g)),
    m.country_code,
    sim.u(38, g) < 0.4,
    t.created_at,
    t.created_at
from generate_series(1, {customers}) as g
join sim.markets as m on m.market = sim.market(sim.u(30, g))
cross join lateral (
    select
        sim.pick(sim.first_names(), sim.u(31, g)) as first_name,
        sim.pick(sim.last_names(), sim.u(39, g)) as last_name,
        -- sign-ups accelerate over time (a growing marketplace)
        timestamptz '{anchor}' - interval '730 days' * (1 - sqrt(sim.u(40, g))) as created_at
) as n
cross join lateral (select n.created_at) as t (created_at);

-- listings: timestamps are set below, once we know which ones sold and when
create temporary table listing_pool on commit drop as
select
    g as id,
    v.id as vendor_id,
    m.market,
    m.currency,
    row_number() over (partition by m.market order by sim.u(52, g), g) as pool_rank
from generate_series(1, {listings}) as g
join vendors as v on v.id = 1 + floor(sim.u(50, g) * {vendors})::bigint
join sim.markets as m on m.country_code = v.country_code;

analyze listing_pool;

create temporary table order_plan on commit drop as
select
    g as id,
    c.id as customer_id,
    m.market,
    m.currency,
    p.placed_at,
    case when sim.u(62, g) < 0.3 then 'pickup' else 'shipping' end as fulfillment_method,
    1 + (sim.u(63, g) < 0.2)::integer + (sim.u(64, g) < 0.05)::integer as item_count
from generate_series(1, {orders}) as g
-- a few customers buy often: a skewed pick of customer ids
join customers as c on c.id = 1 + floor(power(sim.u(60, g), 1.6) * {customers})::bigint
join sim.markets as m on m.country_code = c.country_code
cross join lateral (
    select c.created_at + (timestamptz '{anchor}' - c.created_at) * sim.u(61, g) as placed_at
) as p;

analyze order_plan;

create temporary table item_plan on commit drop as
select
    o.id as order_id,
    o.market,
    o.placed_at,
    k as position,
    row_number() over (partition by o.market order by o.id, k) as market_rank
from order_plan as o
cross join generate_series(1, o.item_count) as k;

analyze item_plan;

-- order outcome by age: recent orders are still in flight
create temporary table order_outcome on commit drop as
select
    o.*,
    case
        when sim.u(70, o.id) < 0.04 then 'cancelled'
        when o.placed_at > timestamptz '{anchor}' - interval '1 day' and sim.u(71, o.id) < 0.3 then 'placed'
        when o.placed_at > timestamptz '{anchor}' - interval '2 days' then 'paid'
        when o.fulfillment_method = 'shipping' and o.placed_at > timestamptz '{anchor}' - interval '6 days' then 'shipped'
        when sim.u(72, o.id) < 0.05 then 'refunded'
        when o.fulfillment_method = 'pickup' then 'picked_up'
        else 'delivered'
    end as status,
    o.placed_at + interval '1 minute' * (2 + sim.u(73, o.id) * 60) as paid_at,
    o.placed_at + interval '1 hour' * (20 + sim.u(74, o.id) * 30) as shipped_at,
    o.placed_at + interval '1 hour' * (70 + sim.u(75, o.id) * 60) as delivered_at,
    least(
        o.placed_at + interval '1 hour' * (100 + sim.u(76, o.id) * 300),
        timestamptz '{anchor}' - interval '1 minute'
    ) as refunded_at
from order_plan as o;

analyze order_outcome;

insert into order_items (id, order_id, listing_id, vendor_id, quantity, unit_price_cents, created_at, updated_at)
select
    row_number() over (order by i.order_id, i.position),
    i.order_id,
    l.id,
    l.vendor_id,
    1,
    0,
    i.placed_at,
    i.placed_at
from item_plan as i
join (select market, count(*) as pool_size from listing_pool group by market) as pool on pool.market = i.market
join listing_pool as l
    on l.market = i.market
    and l.pool_rank = 1 + (i.market_rank - 1) % pool.pool_size;

create temporary table listing_sales on commit drop as
select
    i.listing_id,
    min(o.placed_at) as first_ordered_at,
    min(o.placed_at) filter (where o.status <> 'cancelled') as sold_at
from order_items as i
join order_outcome as o on o.id = i.order_id
group by i.listing_id;

analyze listing_sales;

insert into listings (
    id, vendor_id, category_id, title, item_condition, price_cents, currency, status, listed_at,
    created_at, updated_at
)
select
    l.id,
    l.vendor_id,
    9 + floor(sim.u(53, l.id) * 40)::integer,
    sim.pick(array['Vintage', 'Retro', 'Classic', 'Handmade', 'Mid-century', 'Barely used', 'Signed'], sim.u(54, l.id))
        || ' '
        || sim.pick(array['lamp', 'armchair', 'jacket', 'camera', 'novel', 'teapot', 'bicycle', 'board game', 'vinyl record', 'watch'], sim.u(55, l.id)),
    sim.pick(array['new', 'like_new', 'good', 'fair'], sim.u(56, l.id)),
    (round(exp(ln(300) + sim.u(57, l.id) * ln(150))))::bigint,
    l.currency,
    case
        when s.sold_at is not null then 'sold'
        when sim.u(58, l.id) < 0.1 then 'withdrawn'
        else 'active'
    end,
    t.listed_at,
    t.listed_at,
    greatest(t.listed_at, coalesce(s.sold_at, t.listed_at))
from listing_pool as l
left join listing_sales as s on s.listing_id = l.id
join vendors as v on v.id = l.vendor_id
cross join lateral (
    select least(
        s.first_ordered_at - interval '1 minute',
        greatest(
            v.created_at,
            coalesce(
                s.first_ordered_at - interval '1 day' * (1 + sim.u(59, l.id) * 45),
                timestamptz '{anchor}' - interval '730 days' * sim.u(51, l.id)
            )
        )
    ) as listed_at
) as t;

analyze order_items;

analyze listings;

update order_items as i
set unit_price_cents = l.price_cents
from listings as l
where l.id = i.listing_id;

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
    s.subtotal,
    case when o.fulfillment_method = 'shipping' then 495 else 0 end,
    s.subtotal + case when o.fulfillment_method = 'shipping' then 495 else 0 end,
    o.placed_at,
    o.placed_at,
    case o.status
        when 'placed' then o.placed_at
        when 'cancelled' then o.placed_at + interval '3 hours'
        when 'paid' then o.paid_at
        when 'shipped' then o.shipped_at
        when 'picked_up' then o.shipped_at
        when 'delivered' then o.delivered_at
        when 'refunded' then o.refunded_at
    end
from order_outcome as o
join (
    select i.order_id, sum(i.unit_price_cents * i.quantity)::bigint as subtotal
    from order_items as i
    group by i.order_id
) as s on s.order_id = o.id;

-- an order whose market had no listing to sell has no items and was not created
delete from order_outcome as o where not exists (select from orders where orders.id = o.id);

analyze orders;

insert into payments (
    id, order_id, provider_reference, payment_method, status, amount_cents, currency, paid_at,
    created_at, updated_at
)
select
    row_number() over (order by o.id),
    o.id,
    'pay_' || md5('{seed}:' || o.id),
    sim.pick(array['card', 'card', 'card', 'paypal', 'bank_transfer', 'wallet'], sim.u(80, o.id)),
    case when o.status = 'refunded' then 'refunded' else 'captured' end,
    o.total_cents,
    o.currency,
    oo.paid_at,
    oo.paid_at,
    case when o.status = 'refunded' then oo.refunded_at else oo.paid_at end
from orders as o
join order_outcome as oo on oo.id = o.id
where o.status not in ('placed', 'cancelled');

insert into shipments (
    id, order_id, carrier, tracking_number, status, shipped_at, delivered_at, created_at, updated_at
)
select
    row_number() over (order by o.id),
    o.id,
    c.carrier,
    upper(left(c.carrier, 3)) || lpad(o.id::text, 10, '0'),
    case when o.status = 'shipped' then 'in_transit' else 'delivered' end,
    o.shipped_at,
    case when o.status = 'shipped' then null else o.delivered_at end,
    o.paid_at + interval '2 hours',
    case when o.status = 'shipped' then o.shipped_at else o.delivered_at end
from order_outcome as o
cross join lateral (
    select sim.pick(array['DHL', 'UPS', 'PostNord', 'Royal Mail', 'USPS'], sim.u(90, o.id)) as carrier
) as c
where o.fulfillment_method = 'shipping' and o.status in ('shipped', 'delivered', 'refunded');

insert into refunds (id, order_id, payment_id, amount_cents, reason, refunded_at, created_at, updated_at)
select
    row_number() over (order by o.id),
    o.id,
    p.id,
    case when sim.u(100, o.id) < 0.7 then p.amount_cents else p.amount_cents / 2 end,
    sim.pick(array['not_as_described', 'damaged', 'changed_mind', 'late_delivery'], sim.u(101, o.id)),
    o.refunded_at,
    o.refunded_at,
    o.refunded_at
from order_outcome as o
join payments as p on p.order_id = o.id
where o.status = 'refunded';

insert into reviews (id, order_id, customer_id, vendor_id, rating, body, created_at, updated_at)
select
    row_number() over (order by o.id),
    o.id,
    o.customer_id,
    fi.vendor_id,
    r.rating,
    case when sim.u(112, o.id) < 0.6 then sim.pick(array['Great find!', 'As described.', 'Fast shipping.', 'Not quite as pictured.', 'Lovely seller.'], sim.u(113, o.id)) end,
    r.reviewed_at,
    r.reviewed_at
from order_outcome as o
join (
    select distinct on (i.order_id) i.order_id, i.vendor_id from order_items as i order by i.order_id, i.id
) as fi on fi.order_id = o.id
cross join lateral (
    select
        (1 + floor(power(sim.u(110, o.id), 0.35) * 5))::smallint as rating,
        o.delivered_at + interval '1 hour' * (5 + sim.u(111, o.id) * 200) as reviewed_at
) as r
where o.status in ('delivered', 'picked_up') and sim.u(114, o.id) < 0.35
    and r.reviewed_at <= timestamptz '{anchor}';

insert into order_status_events (id, order_id, status, occurred_at, created_at)
select row_number() over (order by e.occurred_at, e.order_id, e.step), e.order_id, e.status, e.occurred_at, e.occurred_at
from (
    select o.id as order_id, 1 as step, 'placed' as status, o.placed_at as occurred_at from order_outcome as o
    union all
    select o.id, 2, 'cancelled', o.placed_at + interval '3 hours' from order_outcome as o where o.status = 'cancelled'
    union all
    select o.id, 2, 'paid', o.paid_at from order_outcome as o where o.status not in ('placed', 'cancelled')
    union all
    select o.id, 3, case when o.fulfillment_method = 'pickup' then 'picked_up' else 'shipped' end, o.shipped_at
    from order_outcome as o where o.status in ('shipped', 'delivered', 'picked_up', 'refunded')
    union all
    select o.id, 4, 'delivered', o.delivered_at
    from order_outcome as o where o.fulfillment_method = 'shipping' and o.status in ('delivered', 'refunded')
    union all
    select o.id, 5, 'refunded', o.refunded_at from order_outcome as o where o.status = 'refunded'
) as e;
