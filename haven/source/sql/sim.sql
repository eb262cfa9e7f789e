-- The simulator's side schema: its clock, its random numbers and its record of injected defects.
-- The pipeline never reads this schema (the read-only role has no access to it).
create schema sim;

create table sim.meta (
    seed bigint not null,
    scale numeric not null,
    anchor timestamptz not null,
    clock timestamptz not null,
    defect_rate numeric not null,
    ticked_days integer not null default 0,
    ticked_hours integer not null default 0,
    created_at timestamptz not null default now()
);

create table sim.markets (
    market integer primary key,
    country_code char(2) not null,
    currency char(3) not null,
    cumulative_weight double precision not null,
    cities text [] not null,
    dial_code text not null
);

insert into sim.markets values
    (1, 'US', 'USD', 0.40, array['New York', 'Chicago', 'Austin', 'Seattle', 'Denver', 'Boston'], '+1'),
    (2, 'GB', 'GBP', 0.60, array['London', 'Leeds', 'Bristol', 'Glasgow', 'Manchester'], '+44'),
    (3, 'DE', 'EUR', 0.90, array['Berlin', 'Hamburg', 'Munich', 'Cologne', 'Leipzig'], '+49'),
    (4, 'SE', 'SEK', 1.00, array['Stockholm', 'Gothenburg', 'Malmo', 'Uppsala'], '+46');

create table sim.defects (
    table_name text not null,
    row_id bigint not null,
    defect text not null,
    column_name text not null,
    injected_at timestamptz not null,
    primary key (table_name, row_id)
);

-- Deterministic uniform [0, 1) from (stream, key): the same seed gives the same data, whatever
-- order PostgreSQL evaluates rows in.
create function sim.u(stream integer, k bigint) returns double precision
language sql immutable parallel safe
return ((hashint8extended(k, {seed}::bigint * 1000003 + stream) >> 11) & 9007199254740991)::double precision
    / 9007199254740992.0;

create function sim.pick(items text [], u double precision) returns text
language sql immutable parallel safe
return items[1 + floor(u * cardinality(items))::integer];

create function sim.market(u double precision) returns integer
language sql immutable parallel safe
return case when u < 0.40 then 1 when u < 0.60 then 2 when u < 0.90 then 3 else 4 end;

create function sim.first_names() returns text []
language sql immutable
return array[
    'Ada', 'Ben', 'Chloe', 'Dev', 'Elif', 'Finn', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Kira', 'Liam',
    'Maya', 'Noah', 'Olga', 'Pablo', 'Quinn', 'Rosa', 'Sami', 'Tara', 'Umar', 'Vera', 'Wes', 'Yara',
    'Zoe', 'Alva', 'Bruno', 'Cleo', 'Dario', 'Emil'
];

create function sim.last_names() returns text []
language sql immutable
return array[
    'Andersson', 'Baker', 'Costa', 'Dubois', 'Evans', 'Fischer', 'Garcia', 'Hansen', 'Ito', 'Jensen',
    'Khan', 'Lopez', 'Muller', 'Nowak', 'Okafor', 'Patel', 'Quist', 'Rossi', 'Schmidt', 'Taylor',
    'Usman', 'Varga', 'Weber', 'Xu', 'Young', 'Zhang', 'Berg', 'Carter', 'Diaz', 'Lind'
];

create function sim.street(u double precision, v double precision) returns text
language sql immutable parallel safe
return (1 + floor(u * 998))::integer || ' '
    || sim.pick(array['Oak', 'Mill', 'Harbor', 'Station', 'Church', 'Maple', 'Garden', 'River', 'King', 'Elm'], v)
    || ' Street';

create function sim.postal_code(country char(2), u double precision) returns text
language sql immutable parallel safe
return case country
    when 'GB' then 'E' || (1 + floor(u * 20))::integer || ' ' || (1 + floor(u * 9000)::integer % 9) || 'AB'
    when 'SE' then lpad((10000 + floor(u * 89999))::integer::text, 5, '0')
    else lpad(floor(u * 99999)::integer::text, 5, '0')
end;
