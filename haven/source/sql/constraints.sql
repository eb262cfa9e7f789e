-- Keys and indexes, added after the bulk load (much faster than maintaining them row by row).
alter table categories add primary key (id);
alter table categories add foreign key (parent_id) references categories (id);
create unique index categories_slug_key on categories (slug);

alter table vendors add primary key (id);
alter table customers add primary key (id);
create index customers_email_idx on customers (lower(email));

alter table listings add primary key (id);
alter table listings add foreign key (vendor_id) references vendors (id);
alter table listings add foreign key (category_id) references categories (id);
create index listings_vendor_id_idx on listings (vendor_id);
create index listings_category_id_idx on listings (category_id);
create index listings_status_idx on listings (status);

alter table orders add primary key (id);
alter table orders add foreign key (customer_id) references customers (id);
create index orders_customer_id_idx on orders (customer_id);
create index orders_status_idx on orders (status);

alter table order_items add primary key (id);
alter table order_items add foreign key (order_id) references orders (id);
alter table order_items add foreign key (vendor_id) references vendors (id);
create index order_items_order_id_idx on order_items (order_id);
create index order_items_listing_id_idx on order_items (listing_id);

alter table payments add primary key (id);
alter table payments add foreign key (order_id) references orders (id);
create index payments_order_id_idx on payments (order_id);

alter table shipments add primary key (id);
alter table shipments add foreign key (order_id) references orders (id);
create unique index shipments_order_id_key on shipments (order_id);

alter table refunds add primary key (id);
alter table refunds add foreign key (order_id) references orders (id);
alter table refunds add foreign key (payment_id) references payments (id);
create index refunds_order_id_idx on refunds (order_id);

alter table reviews add primary key (id);
alter table reviews add foreign key (order_id) references orders (id);
alter table reviews add foreign key (customer_id) references customers (id);
alter table reviews add foreign key (vendor_id) references vendors (id);
create index reviews_order_id_idx on reviews (order_id);

alter table order_status_events add primary key (id);
alter table order_status_events add foreign key (order_id) references orders (id);
create index order_status_events_order_id_idx on order_status_events (order_id);

-- incremental extraction reads by updated_at
create index vendors_updated_at_idx on vendors (updated_at);
create index customers_updated_at_idx on customers (updated_at);
create index listings_updated_at_idx on listings (updated_at);
create index orders_updated_at_idx on orders (updated_at);
create index order_items_updated_at_idx on order_items (updated_at);
create index payments_updated_at_idx on payments (updated_at);
create index shipments_updated_at_idx on shipments (updated_at);
create index refunds_updated_at_idx on refunds (updated_at);
create index reviews_updated_at_idx on reviews (updated_at);
