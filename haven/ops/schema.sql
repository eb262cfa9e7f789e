-- Run history, written by the flows (as the transformer, owner of the ops schema). Idempotent.
create table if not exists ops.runs (
    run_id uuid primary key,
    flow_run_id text,
    deployment text,
    started_at timestamptz not null,
    finished_at timestamptz,
    status text not null,
    error text,
    wall_seconds double precision,
    task_seconds double precision,
    rows_extracted bigint,
    rows_loaded bigint,
    models_built integer,
    tests_passed integer,
    tests_failed integer,
    tests_warned integer,
    cpu_seconds double precision,
    bytes_moved bigint,
    warehouse_bytes bigint,
    cost_usd double precision,
    monthly_estimate_usd double precision,
    monthly_budget_usd double precision
);

create table if not exists ops.run_tasks (
    run_id uuid not null references ops.runs (run_id) on delete cascade,
    task_name text not null,
    started_at timestamptz not null,
    seconds double precision not null,
    attempts integer not null,
    status text not null,
    primary key (run_id, task_name)
);

create table if not exists ops.run_tables (
    run_id uuid not null references ops.runs (run_id) on delete cascade,
    table_name text not null,
    rows_extracted bigint not null,
    rows_loaded bigint not null,
    hard_deletes bigint not null,
    new_columns text [] not null,
    problem text,
    primary key (run_id, table_name)
);

create table if not exists ops.dbt_results (
    run_id uuid not null references ops.runs (run_id) on delete cascade,
    command text not null,
    unique_id text not null,
    resource_type text not null,
    status text not null,
    seconds double precision not null,
    rows_affected bigint,
    message text,
    primary key (run_id, command, unique_id)
);

create table if not exists ops.source_freshness (
    run_id uuid not null references ops.runs (run_id) on delete cascade,
    source_table text not null,
    max_loaded_at timestamptz,
    lag_seconds double precision,
    status text not null,
    primary key (run_id, source_table)
);

create table if not exists ops.reconciliation (
    run_id uuid not null references ops.runs (run_id) on delete cascade,
    table_name text not null,
    source_rows bigint not null,
    raw_rows bigint not null,
    staged_rows bigint not null,
    quarantined_rows bigint not null,
    row_difference bigint not null,
    money_column text,
    source_amount numeric,
    mart_amount numeric,
    quarantined_amount numeric,
    amount_difference numeric,
    primary key (run_id, table_name)
);

-- Added later; a warehouse recorded by an older version gains them here.
alter table ops.dbt_results add column if not exists model text;
-- where the run's dbt project built: postgres, or spark (haven run --engine spark)
alter table ops.runs add column if not exists engine text not null default 'postgres';
alter table ops.source_freshness add column if not exists warn_after_seconds double precision;
alter table ops.source_freshness add column if not exists error_after_seconds double precision;

create table if not exists ops.alerts (
    run_id uuid references ops.runs (run_id) on delete cascade,
    created_at timestamptz not null default now(),
    kind text not null,
    message text not null,
    delivered boolean not null
);

-- Value reconciliation: raw's live rows against the source's over every column (ingestion/app/
-- values.py), per table per run; differing rows are read again (repaired) by the run
create table if not exists ops.value_checks (
    run_id uuid not null references ops.runs (run_id) on delete cascade,
    table_name text not null,
    checked_at timestamptz not null,
    scope text not null,
    rows_compared bigint not null,
    rows_differing bigint not null,
    rows_repaired bigint not null,
    sample_keys text [] not null,
    not_yet_deleted bigint not null,
    primary key (run_id, table_name)
);
