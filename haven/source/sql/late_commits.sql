-- Late commits: corrections that commit after the day's other changes but carry an updated_at up
-- to 36 hours earlier (a slow worker, a clock-skewed replica). An incremental loader with no
-- overlap window misses them. Parameters: {stream} {start} {fraction} (as in tick.sql).
update shipments
set
    tracking_number = tracking_number || 'C',
    updated_at = timestamptz '{start}' - interval '1 hour' * (6 + sim.u(230 + {stream} * 1000, id) * 30)
where status = 'in_transit' and created_at < timestamptz '{start}' - interval '40 hours'
    and sim.u(231 + {stream} * 1000, id) < 0.05 * {fraction};

update customers as c
set
    phone = c.phone || '0',
    updated_at = timestamptz '{start}' - interval '1 hour' * (6 + sim.u(232 + {stream} * 1000, c.id) * 30)
where c.created_at < timestamptz '{start}' - interval '40 hours'
    and sim.u(233 + {stream} * 1000, c.id) < 0.0005 * {fraction};
