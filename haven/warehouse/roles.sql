-- Warehouse roles and schema boundaries, as code. Applied by `haven up` on every start; every
-- statement is idempotent. None of these roles is a superuser.
--
--   haven_loader       writes raw_app (dlt)
--   haven_transformer  reads raw_app, writes the dbt schemas
--   haven_analyst      reads analytics and ops
--   haven_ml           reads ml and ops
--   haven_mcp          reads analytics, ml and ops (the MCP server)

-- Applied by a superuser (the embedded server) or by a managed service's owner role: not a
-- superuser, but CREATEROLE and the owner of the database. So a role attribute only a superuser
-- may name (SUPERUSER, REPLICATION, BYPASSRLS: naming them at all needs one) is altered only when
-- a role has it, and the owner makes itself a member of the roles that own schemas, which
-- CREATE SCHEMA ... AUTHORIZATION and ALTER DEFAULT PRIVILEGES FOR ROLE need (PostgreSQL 16+:
-- with SET, which the ADMIN OPTION a creator gets does not give).
do $roles$
declare
    role_name text;
    found pg_roles%rowtype;
    runs_as_superuser boolean := (select rolsuper from pg_roles where rolname = current_user);
    version integer := current_setting('server_version_num')::integer;
begin
    foreach role_name in array array[
        'haven_loader', 'haven_transformer', 'haven_analyst', 'haven_ml', 'haven_mcp'
    ] loop
        if not exists (select from pg_roles where rolname = role_name) then
            execute format('create role %I login', role_name);
        end if;
        select * into found from pg_roles where rolname = role_name;
        if found.rolsuper or found.rolreplication or found.rolbypassrls then
            execute format('alter role %I nosuperuser noreplication nobypassrls', role_name);
        end if;
        if not found.rolcanlogin or found.rolcreatedb or found.rolcreaterole then
            execute format('alter role %I login nocreatedb nocreaterole', role_name);
        end if;
        execute format('grant connect on database %I to %I', current_database(), role_name);
    end loop;
    if not runs_as_superuser then
        foreach role_name in array array['haven_loader', 'haven_transformer'] loop
            if version >= 160000 then
                if not pg_has_role(current_user, role_name, 'SET') then
                    execute format('grant %I to %I with inherit true, set true', role_name, current_user);
                end if;
            elsif not pg_has_role(current_user, role_name, 'MEMBER') then
                execute format('grant %I to %I', role_name, current_user);
            end if;
        end loop;
    end if;
    execute format('revoke all on database %I from public', current_database());
    -- the transformer may create schemas of its own (dbt's stored test failures, for example)
    execute format('grant create on database %I to haven_transformer', current_database());
    -- temporary tables: the loader compares key sets in one, dbt builds incremental models in them
    execute format('grant temporary on database %I to haven_loader, haven_transformer', current_database());
end
$roles$;

-- nobody creates objects in public (PostgreSQL 15+ does this by default; before 15 the schema
-- belongs to the bootstrap superuser, and a non-superuser owner cannot: haven up says so)
do $public$
begin
    revoke create on schema public from public;
exception when insufficient_privilege then
    raise notice 'haven: cannot revoke create on schema public: %', sqlerrm;
end
$public$;

-- the loader owns what dlt writes: the dataset and dlt's staging dataset for merges
create schema if not exists raw_app authorization haven_loader;
create schema if not exists raw_app_staging authorization haven_loader;
-- and where a full refresh keeps raw's deleted rows while raw is loaded again
create schema if not exists raw_app_tombstones authorization haven_loader;
alter schema raw_app owner to haven_loader;
alter schema raw_app_staging owner to haven_loader;
alter schema raw_app_tombstones owner to haven_loader;

-- the transformer owns every schema dbt builds
create schema if not exists staging authorization haven_transformer;
create schema if not exists quarantine authorization haven_transformer;
create schema if not exists snapshots authorization haven_transformer;
create schema if not exists analytics authorization haven_transformer;
create schema if not exists ml authorization haven_transformer;
create schema if not exists ops authorization haven_transformer;

-- raw_app: readable by the transformer only
grant usage on schema raw_app to haven_transformer;
grant select on all tables in schema raw_app to haven_transformer;
alter default privileges for role haven_loader in schema raw_app
    grant select on tables to haven_transformer;

-- analytics: analysts and the MCP server
grant usage on schema analytics to haven_analyst, haven_mcp;
grant select on all tables in schema analytics to haven_analyst, haven_mcp;
alter default privileges for role haven_transformer in schema analytics
    grant select on tables to haven_analyst, haven_mcp;

-- ml: the ML team and the MCP server
grant usage on schema ml to haven_ml, haven_mcp;
grant select on all tables in schema ml to haven_ml, haven_mcp;
alter default privileges for role haven_transformer in schema ml
    grant select on tables to haven_ml, haven_mcp;

-- ops: run history is for everyone
grant usage on schema ops to haven_analyst, haven_ml, haven_mcp;
grant select on all tables in schema ops to haven_analyst, haven_ml, haven_mcp;
alter default privileges for role haven_transformer in schema ops
    grant select on tables to haven_analyst, haven_ml, haven_mcp;

-- the MCP server's role: read-only by default, with limits SQL sent through it cannot change
-- (SET and set_config() are refused by the server's parser checks)
alter role haven_mcp set default_transaction_read_only = on;
alter role haven_mcp set statement_timeout = '5s';
alter role haven_mcp set lock_timeout = '500ms';
alter role haven_mcp set idle_in_transaction_session_timeout = '30s';
-- a superuser-only setting: where the owner may not set it, haven up and haven status say so
do $limits$
begin
    alter role haven_mcp set temp_file_limit = '256MB';
exception when insufficient_privilege then
    raise notice 'haven: cannot set temp_file_limit for haven_mcp: %', sqlerrm;
end
$limits$;

-- query statistics for index advice (preloaded by the embedded server; optional elsewhere)
do $stats$
begin
    create extension if not exists pg_stat_statements;
    grant pg_read_all_stats to haven_mcp;
exception when others then
    raise notice 'pg_stat_statements unavailable: %', sqlerrm;
end
$stats$;

-- the PII masking key: a private schema only the transformer reads (written by haven/warehouse/pii.py)
create schema if not exists haven_private;
revoke all on schema haven_private from public;
grant usage on schema haven_private to haven_transformer;
create table if not exists haven_private.pii_key (inner_pad text not null, outer_pad text not null);
revoke all on haven_private.pii_key from public;
grant select on haven_private.pii_key to haven_transformer;
