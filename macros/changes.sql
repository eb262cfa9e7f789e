{#- Change tracking: each incremental model rebuilds only the keys whose raw rows changed since
    the model last committed.

    The loader marks every raw row it writes with its load id (_dlt_load_id, the unix time the
    load started) and every row it finds deleted in the source with _haven_deleted_at. A model's
    watermark, in ops.change_watermarks, is the start of the transaction in which it last
    committed; a raw row changed for that model when either mark is later. The watermark is
    written by a post-hook inside the model's own transaction, so the model's rows and its
    watermark commit together, and a model that fails (or is skipped) keeps its old watermark
    and catches up on its next run. Within a run the ingest finishes before the build starts,
    and two runs never overlap (the elt lock), so no raw row commits with a mark older than a
    watermark already recorded (the marks come from the loader's clock, the watermark from the
    warehouse's: on one machine, or with synchronised clocks, they agree).

    A model's change set is also its changed_keys config, which the changed_keys strategy reads
    to delete what changed. dbt renders that config when it parses the model: there `this` has
    the right identifier but not the right schema, source() does not resolve, and no query may
    run, so the macros name the model by identifier (unique in the project), raw tables by
    raw_table(), and leave the watermark as a placeholder the strategy fills in at run time. -#}

{% macro create_change_watermarks() -%}
    {{ return(adapter.dispatch('create_change_watermarks', 'clutter_haven')()) }}
{%- endmacro %}

{% macro default__create_change_watermarks() -%}
    create table if not exists ops.change_watermarks (
        model_name text primary key,
        changed_until timestamptz not null
    )
{%- endmacro %}

{% macro spark__create_change_watermarks() -%}
    {#- A parquet table cannot update a row: one partition per model, replaced at the end of
        each invocation that built the model (record_change_watermarks). -#}
    {%- if execute -%}{% do adapter.execute('create database if not exists ops') %}{%- endif -%}
    create table if not exists ops.change_watermarks (
        changed_until timestamp,
        model_name string
    )
    using parquet
    partitioned by (model_name)
{%- endmacro %}


{% macro watermark_literals() -%}
    {#- Run time: this model's watermark as two SQL literals, the load id (a number) and the
        timestamp it stands for; 0 and the earliest time before the model's first build.
        Every model's watermark is read once per invocation, by the first model that needs
        one: a model's own watermark changes only when the model commits, after it read its
        change set (a query costs Spark a job; the strategy renders the change set again,
        in a context of its own). Kept in `graph`, the one object every node of the
        invocation shares, by invocation id. -#}
    {%- set cache = graph.setdefault('haven_watermarks', {}) -%}
    {%- if invocation_id not in cache -%}
        {%- set watermarks = {} -%}
        {%- for model_name, load_id, time in run_query(watermark_query()).rows -%}
            {%- do watermarks.update({model_name: [load_id, timestamp_literal(time)]}) -%}
        {%- endfor -%}
        {%- do cache.update({invocation_id: watermarks}) -%}
    {%- endif -%}
    {%- set watermarks = cache[invocation_id] -%}
    {{ return(watermarks.get(this.identifier, watermarks[none])) }}
{%- endmacro %}

{% macro watermark_query() -%}
    {#- Every model's watermark (model name, load id, time), and the one before a first build
        (no model name). -#}
    {{ return(adapter.dispatch('watermark_query', 'clutter_haven')()) }}
{%- endmacro %}

{% macro default__watermark_query() -%}
    select model_name, extract(epoch from changed_until)::text, changed_until::text
    from ops.change_watermarks
    union all
    select null, '0', '-infinity'
{%- endmacro %}

{% macro spark__watermark_query() -%}
    select
        model_name,
        cast(cast(unix_micros(changed_until) as decimal(20, 0)) / 1000000 as string),
        cast(changed_until as string)
    from ops.change_watermarks
    union all
    select null, '0', '0001-01-01 00:00:00'
{%- endmacro %}

{% macro timestamp_literal(text) -%}
    {{ return(adapter.dispatch('timestamp_literal', 'clutter_haven')(text)) }}
{%- endmacro %}

{% macro default__timestamp_literal(text) -%}'{{ text }}'::timestamptz{%- endmacro %}

{% macro spark__timestamp_literal(text) -%}timestamp'{{ text }}'{%- endmacro %}


{% macro changed_since_last_build(table) -%}
    {#- True for a row of raw_table(table) that changed after this model's watermark. Outside an
        incremental run (parsing, a full build) the watermark is a placeholder. -#}
    {%- if execute and is_incremental() -%}
        {%- set load_id_after, time_after = watermark_literals() -%}
    {%- else -%}
        {%- set load_id_after, time_after = '__haven_watermark_load_id__', '__haven_watermark_time__' -%}
    {%- endif -%}
    {{ return(adapter.dispatch('changed_since_last_build', 'clutter_haven')(table, load_id_after, time_after)) }}
{%- endmacro %}

{% macro default__changed_since_last_build(table, load_id_after, time_after) -%}
    {#- Loaded or marked deleted after the watermark. Load ids are unix times, compared as
        numbers: the loader indexes _dlt_load_id::numeric, whose statistics size a change set
        well (as text, load ids differ only in late digits and PostgreSQL estimates one row,
        then plans nested loops over thousands). The watermark is a literal, so PostgreSQL
        estimates the change set from the load-id index (a subquery would be a guess, and a bad
        guess plans nested loops over thousands of changed rows). -#}
    (
        _dlt_load_id::numeric > {{ load_id_after }}
        {%- if table not in append_only_tables() %}
        or _haven_deleted_at > {{ time_after }}
        {%- endif %}
    )
{%- endmacro %}

{% macro spark__changed_since_last_build(table, load_id_after, time_after) -%}
    {#- Appended to the lake after the watermark: a new version, or a deletion mark, carries the
        time its lake load started (ingestion/lake.py). Raw's own marks say when PostgreSQL
        loaded a row, which may be before an earlier Spark build if the lake was exported late. -#}
    (_haven_appended_at > {{ time_after }})
{%- endmacro %}


{% macro append_only_tables() -%}
    {#- Raw tables that are only appended to (no updates, no delete detection). -#}
    {{ return(['order_status_events']) }}
{%- endmacro %}


{% macro raw_table(table) -%}
    {#- The raw table the change sets read, by name rather than source(): they are also rendered
        when dbt parses a model (they are its changed_keys config), and source() only resolves
        at run time. On PostgreSQL raw_app.<table>, the source itself; on Spark the lake's append
        log raw_app_log.<table> (every version with the time it was appended; raw_app has views
        of the newest version per key). -#}
    {%- set schema = var('raw_schema') ~ ('_log' if target.type == 'spark' else '') -%}
    {{ api.Relation.create(database=target.database if target.database is defined else none, schema=schema, identifier=table) }}
{%- endmacro %}


{% macro changed_keys(table, key='id') -%}
    {#- The keys of raw_app.<table> that changed since this model's watermark. -#}
    select {{ key }} from {{ raw_table(table) }} where {{ changed_since_last_build(table) }}
{%- endmacro %}


{% macro staged_changed_keys(table) -%}
    {#- The keys whose staged (or quarantined) row may differ: the table's own changes, and for a
        table whose quarantine rules look up another table (order_items' orphan rules), the rows
        pointing at keys of that table that changed, so a late parent takes its child out of
        quarantine, and for a rule across rows of the table (payments' duplicate provider
        reference) the rows sharing the value with a changed row. Mirrors the base models. -#}
    {%- set lookups = {'order_items': {'order_id': 'orders', 'listing_id': 'listings'}} -%}
    {%- set shared = {'payments': 'provider_reference'} -%}
    {{ changed_keys(table) }}
    {%- for column, parent in lookups.get(table, {}).items() %}
    union
    select id from {{ raw_table(table) }} where {{ in_change_set(column, changed_keys(parent)) }}
    {%- endfor %}
    {%- if table in shared %}
    union
    select id from {{ raw_table(table) }}
    where {{ in_change_set(shared[table], changed_keys(table, shared[table])) }}
    {%- endif %}
{%- endmacro %}


{% macro changed_orders(with_item_categories=false) -%}
    {#- The orders whose own row, items, payments, refunds, shipments or status events changed:
        every order whose fct_orders row may differ. with_item_categories adds the orders with
        an item whose listing took a new category (relisted_items). -#}
    {{ changed_keys('orders') }}
    {%- for table in ['order_items', 'payments', 'refunds', 'shipments', 'order_status_events'] %}
    union
    {{ changed_keys(table, 'order_id') }}
    {%- endfor %}
    {%- if with_item_categories and execute and is_incremental() %}
    union
    select order_id from {{ raw_table('order_items') }}
    where {{ in_change_set('id', relisted_items()) }}
    {%- endif %}
{%- endmacro %}


{% macro relisted_items() -%}
    {#- Run time, in a model body: the order items whose listing took a category since this
        model's watermark: a listing new to the warehouse (an item that arrived before its
        listing had none), or one whose newest versions carry a category different from the
        version before. Most listing changes are price changes; following every one would
        rebuild most days, customers and vendors on each run. (Only in the body: the strategy
        deletes what the body rewrites, and nothing is removed by a category.) -#}
    select order_items.id
    from {{ raw_table('order_items') }} as order_items
    where order_items.listing_id in (
        {{ adapter.dispatch('relisted_listings', 'clutter_haven')() }}
    )
{%- endmacro %}

{% macro default__relisted_listings() -%}
    {#- The versions snp_listings recorded since the watermark (by their raw load id). -#}
    {{ listings_with_new_category(
        ref('snp_listings'), 'listing_id', 'load_id, dbt_valid_from',
        'cast(load_id as decimal(24, 9)) > ' ~ watermark_literals()[0]) }}
{%- endmacro %}

{% macro spark__relisted_listings() -%}
    {#- As on PostgreSQL, and also the versions appended to the lake since the watermark, from
        the lake's log (a raw load id can be older than the watermark when the lake was
        exported late; the log also holds versions quarantine kept out of the history, hence
        both). A deletion mark repeats its listing's category. -#}
    {{ default__relisted_listings() }}
    union
    {{ listings_with_new_category(
        raw_table('listings'), 'id', '_dlt_load_id, _haven_deleted_at',
        '_haven_appended_at > ' ~ watermark_literals()[1]) }}
{%- endmacro %}

{% macro listings_with_new_category(versions, key, version_order, is_new) -%}
    {#- The changed listings (`key` in `versions`, their versions in `version_order`) with a
        new version (`is_new`, SQL) that is the listing's first or carries a category different
        from the version before. -#}
    select {{ key }}
    from (
        select
            {{ key }},
            {{ is_new }} as is_new,
            category_id,
            lag(category_id) over (partition by {{ key }} order by {{ version_order }}) as previous_category_id,
            row_number() over (partition by {{ key }} order by {{ version_order }}) as version
        from {{ versions }}
        where {{ in_change_set(key, changed_keys('listings')) }}
    ) as versions
    where is_new and (version = 1 or coalesce(category_id, -1) != coalesce(previous_category_id, -1))
{%- endmacro %}


{% macro changed_customers() -%}
    {#- The customers whose features, dimension row or cohort may differ: their account, their
        reviews, or anything about one of their orders. -#}
    {{ changed_keys('customers') }}
    union
    {{ changed_keys('reviews', 'customer_id') }}
    union
    select customer_id from {{ raw_table('orders') }}
    where {{ in_change_set('id', changed_orders(with_item_categories=true)) }}
{%- endmacro %}


{% macro changed_vendors() -%}
    {#- The vendors whose features or scorecard may differ: their own row, their reviews, or
        anything about an order they sold into (an item counted once its listing arrived). -#}
    {{ changed_keys('vendors') }}
    union
    {{ changed_keys('reviews', 'vendor_id') }}
    union
    select vendor_id from {{ raw_table('order_items') }}
    where {{ in_change_set('order_id', changed_orders(with_item_categories=true)) }}
{%- endmacro %}


{% macro changed_order_dates(grain='day') -%}
    {#- The days (or months) on which a changed order was placed, items' categories included:
        the partitions of the sales aggregates that may differ. -#}
    select distinct cast(date_trunc('{{ grain }}', placed_at) as date) from {{ raw_table('orders') }}
    where {{ in_change_set('id', changed_orders(with_item_categories=true)) }}
{%- endmacro %}


{% macro dates_not_built(dates, column) -%}
    {#- Run time, in an incremental model keyed by an entity and an as-of date: the dates of
        `dates` (a relation, or a parenthesised subquery) this model holds no row for (a new
        month of data, a label window just closed), as SQL date literals. The model computes
        those dates for every entity and its other dates for its change set alone. -#}
    {%- set query -%}
        select distinct cast(wanted.{{ column }} as {{ dbt.type_string() }})
        from {{ dates }} as wanted
        where not exists (select 1 from {{ this }} as built where built.{{ column }} = wanted.{{ column }})
    {%- endset -%}
    {%- set literals = [] -%}
    {%- for value in run_query(query).columns[0].values() -%}
        {%- do literals.append("cast('" ~ value ~ "' as date)") -%}
    {%- endfor -%}
    {{ return(literals) }}
{%- endmacro %}


{% macro as_of_rows_to_rebuild(entity, changed, column='as_of_date') -%}
    {#- The changed_keys of a model keyed by (entity, as-of date), with config as_of_dates
        naming the model of its dates: every row of an entity in the change set, and every row
        whose date left those dates (a contiguous run of months, so two index range scans find
        them). Rendered when the model is parsed, where neither `this` nor ref() is the table
        yet: the strategy puts them in for __haven_this__ and __haven_as_of_dates__. -#}
    select {{ entity }}, {{ column }} from __haven_this__
    where {{ in_change_set(entity, changed) }}
    union
    select {{ entity }}, {{ column }} from __haven_this__
    where
        {{ column }} < (select min({{ column }}) from __haven_as_of_dates__)
        or {{ column }} > (select max({{ column }}) from __haven_as_of_dates__)
        or not exists (select 1 from __haven_as_of_dates__)
{%- endmacro %}


{% macro in_change_set(key, change_set, through_views=false) -%}
    {#- SQL predicate: the key (a column, or a list of columns) is in the change set, as a
        semi-join the planner sizes from the change set's estimate. through_views compares a
        single column with = any(array(...)) instead: PostgreSQL pushes that down to an index
        scan inside the base views, where a semi-join stays above their outer joins (it then
        assumes ten keys, which suits the index lookups the views do per key; Spark has no
        index and takes the semi-join). -#}
    {%- if through_views and key is string and target.type == 'postgres' -%}
        {{ key }} = any(array({{ change_set }}))
    {%- elif key is string -%}
        {{ key }} in ({{ change_set }})
    {%- else -%}
        ({{ key | join(', ') }}) in ({{ change_set }})
    {%- endif -%}
{%- endmacro %}


{% macro record_change_watermark() -%}
    {#- Post-hook of every model with a changed_keys config (full builds included). -#}
    {%- if config.get('changed_keys') -%}
        {{ adapter.dispatch('record_change_watermark', 'clutter_haven')() }}
    {%- endif -%}
{%- endmacro %}

{% macro default__record_change_watermark() -%}
    {#- The start of the model's transaction, committed with its rows. -#}
    insert into ops.change_watermarks (model_name, changed_until)
    values ('{{ this.identifier }}', now())
    on conflict (model_name) do update set changed_until = excluded.changed_until
{%- endmacro %}

{% macro spark__record_change_watermark() -%}
    {#- Nothing per model: Spark's watermarks are written once, at the end of the invocation
        (record_change_watermarks). -#}
{%- endmacro %}


{% macro record_change_watermarks(results) -%}
    {#- on-run-end. On PostgreSQL nothing (each model's post-hook commits its watermark with its
        rows). On Spark, which has no transaction, the watermark of every model with a
        changed_keys config built in this invocation, in one statement: the start of the
        invocation (the lake marks what it appends with its load's start, and a build starts
        after the ingest it follows: runs never overlap, the elt lock). A model that failed or
        was skipped keeps its old watermark; an invocation killed before its end leaves every
        old watermark, and the next run rewrites the same keys again (a change set only grows
        as its watermark gets older). -#}
    {{ return(adapter.dispatch('record_change_watermarks', 'clutter_haven')(results)) }}
{%- endmacro %}

{% macro default__record_change_watermarks(results) -%}{%- endmacro %}

{% macro spark__record_change_watermarks(results) -%}
    {%- set built = [] -%}
    {%- for result in results
        if result.node.resource_type == 'model' and result.status == 'success'
        and result.node.config.get('changed_keys') -%}
        {%- do built.append("('" ~ result.node.alias ~ "')") -%}
    {%- endfor -%}
    {%- if built -%}
        {#- a dynamic partition overwrite replaces only these models' partitions (and stages
            its files in a folder of its own, where a static one would use the table's
            _temporary folder) -#}
        {%- do adapter.execute('set spark.sql.sources.partitionOverwriteMode = DYNAMIC') -%}
        insert overwrite table ops.change_watermarks partition (model_name)
        select
            timestamp'{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as changed_until,
            model_name
        from values {{ built | join(', ') }} as built (model_name)
    {%- endif -%}
{%- endmacro %}


{% macro get_incremental_changed_keys_sql(arg_dict) -%}
    {#- incremental_strategy='changed_keys': replace every row whose unique key is in the model's
        changed_keys (rows that changed, moved to quarantine or were deleted) or among the rows
        about to be written (a model may rebuild more than its change set, all of it when what
        it is computed against moved) by the model's rows. -#}
    {%- set changed = config.get('changed_keys') -%}
    {%- if not changed -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'changed_keys' needs a changed_keys config: the SQL that selects the keys to rebuild"
        ) }}
    {%- endif -%}
    {%- set load_id_after, time_after = watermark_literals() -%}
    {%- set changed = changed
        | replace('__haven_watermark_load_id__', load_id_after)
        | replace('__haven_watermark_time__', time_after)
        | replace('__haven_this__', arg_dict['target_relation'] | string) -%}
    {%- if config.get('as_of_dates') -%}
        {%- set changed = changed | replace('__haven_as_of_dates__', ref(config.get('as_of_dates')) | string) -%}
    {%- endif -%}
    {%- set key = arg_dict['unique_key'] -%}
    {{ return(changed_keys_sql(arg_dict, changed, [key] if key is string else key)) }}
{%- endmacro %}

{% macro changed_keys_sql(arg_dict, changed, key_columns) -%}
    {{ return(adapter.dispatch('changed_keys_sql', 'clutter_haven')(arg_dict, changed, key_columns)) }}
{%- endmacro %}

{% macro default__changed_keys_sql(arg_dict, changed, key_columns) -%}
    {#- Delete, then insert, in the model's transaction. The delete joins the keys (an OR of two
        IN-subqueries is re-run for every row of the target once the key set outgrows
        work_mem). With config unchanged_rows_kept (aggregates and features, whose change sets
        are partitions: most of a day's or a customer's rows come out as they were), when the
        model recomputes a small part of itself a stored row equal in every column to a
        recomputed one is kept, and only the rows that differ are deleted and inserted (and
        recorded as written, for the tests). The equal pairs are found once, by one join
        (`matched`: the two rows' physical ids), which the record, the delete and the insert
        then read by id. -#}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set names = arg_dict['dest_columns'] | map(attribute='name') | map('string') | list -%}
    {%- set columns = get_quoted_csv(names) -%}
    {%- set keep = config.get('unchanged_rows_kept', false) and recomputes_a_small_part(temp, target) -%}
    {%- set matched = temp.identifier ~ '__matched' -%}
    {%- if keep %}
    create temporary table {{ matched }} on commit drop as
    select target.ctid as stored_row, recomputed.ctid as recomputed_row
    from {{ temp }} as recomputed
    inner join {{ target }} as target
        on
            {%- for column in key_columns %}
            target.{{ column }} = recomputed.{{ column }} and
            {%- endfor %}
            {{ row_text('target', names) }} = {{ row_text('recomputed', names) }};
    analyze {{ matched }};
    {%- endif %}
    {#- first: the last statement's row count is the one dbt reports, the rows inserted -#}
    {%- set recomputed_differs -%}
        not exists (select from {{ matched }} as kept where kept.recomputed_row = recomputed.ctid)
    {%- endset %}
    {{ record_written_keys(temp, key_columns, recomputed_differs if keep else none) }};

    delete from {{ target }} as target
    using (
        {{ changed }}
        union
        select {{ key_columns | join(', ') }} from {{ temp }}
    ) as changed_keys ({{ key_columns | join(', ') }})
    where
        {%- for column in key_columns %}
        target.{{ column }} = changed_keys.{{ column }}{{ " and" if not loop.last }}
        {%- endfor %}
        {%- if keep %}
        and not exists (select from {{ matched }} as kept where kept.stored_row = target.ctid)
        {%- endif %};

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ temp }} as recomputed
    {%- if keep %}
    where {{ recomputed_differs }}
    {%- endif %}
{%- endmacro %}

{% macro recomputes_a_small_part(temp, target) -%}
    {#- Run time: the recomputed rows are at most a quarter of the stored ones (by the
        planner's count). Past that, comparing every recomputed row costs more than rewriting
        them (a day's sales recomputed over weeks of days by an hour's status moves). -#}
    {%- set query -%}
        select (select count(*) from {{ temp }}) * 4
            <= (select greatest(reltuples, 0) from pg_class where oid = '{{ target }}'::regclass)
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}

{% macro row_text(alias, names) -%}
    {#- SQL: the row `alias` as text, its columns `names` in order. Two rows are compared by
        their text (NULL and '' differ there, numbers and times print exactly), by equality, so
        PostgreSQL hashes or sorts the comparison: IS NOT DISTINCT FROM would compare each row
        with every row of its key (a day's sales: hundreds), and row equality never finds a row
        with a NULL (most feature rows have one). -#}
    row({% for name in names %}{{ alias }}.{{ adapter.quote(name) }}{{ ', ' if not loop.last }}{% endfor %})::text
{%- endmacro %}

{% macro written_keys_relation(identifier) -%}
    {#- Where a model's incremental run leaves the keys of the rows it wrote (the keys of its
        temporary relation: the strategy replaced every row with those keys), for its tests. -#}
    {{ return(api.Relation.create(
        database=target.database, schema='ops', identifier='written__' ~ identifier)) }}
{%- endmacro %}

{% macro wrote_keys_in_this_invocation(identifier) -%}
    {#- Run time, in a test: whether the model recorded its written keys in this invocation.
        The models that did are read again only when one is not among those read before (a
        test runs after its model: a query per model, not per test), kept in `graph` by
        invocation id. -#}
    {%- set cache = graph.setdefault('haven_written_keys', {}) -%}
    {%- if identifier not in cache.get(invocation_id, []) -%}
        {%- set query -%}
            select model_name from ops.written_keys where invocation_id = '{{ invocation_id }}'
        {%- endset -%}
        {%- do cache.update({invocation_id: run_query(query).columns[0].values() | list}) -%}
    {%- endif -%}
    {{ return(identifier in cache[invocation_id]) }}
{%- endmacro %}

{% macro record_written_keys(temp_relation, key_columns, only=none) -%}
    {#- The keys of the rows in temp_relation (the `only` ones: SQL over its rows, alias
        `recomputed`) the model writes. Replaced in the model's transaction, with the
        invocation that wrote it in ops.written_keys (made on-run-start). Analyzed: the tests
        join it to the model, and the planner must know whether it holds ten keys or a
        million. -#}
    {%- set written = written_keys_relation(this.identifier) -%}
    drop table if exists {{ written }};
    create unlogged table {{ written }} as
    select distinct {{ key_columns | join(', ') }} from {{ temp_relation }} as recomputed
    {%- if only %}
    where {{ only }}
    {%- endif %};
    analyze {{ written }};
    insert into ops.written_keys (model_name, invocation_id)
    values ('{{ this.identifier }}', '{{ invocation_id }}')
    on conflict (model_name) do update set invocation_id = excluded.invocation_id
{%- endmacro %}


{% macro record_invocation_start() -%}
    {#- on-run-start: the transaction id this dbt invocation starts at; rows written later by
        its models have a newer xmin (changed_in_this_invocation). Older records are dropped. -#}
    {%- if target.type != 'postgres' -%}{{ return('') }}{%- endif -%}
    create table if not exists ops.dbt_invocations (
        invocation_id text primary key,
        started_xid xid8 not null,
        started_at timestamptz not null default now()
    );
    delete from ops.dbt_invocations where started_at < now() - interval '7 days';
    create table if not exists ops.written_keys (
        model_name text primary key,
        invocation_id text not null
    );
    insert into ops.dbt_invocations (invocation_id, started_xid)
    values ('{{ invocation_id }}', pg_current_xact_id())
{%- endmacro %}


{% macro postgres__get_where_subquery(relation) -%}
    {#- What a data test reads (dbt's get_where_subquery, plus one rule). With var
        test_changed_rows_only (haven sets it for an incremental run), a test of an incremental
        model reads only the rows this invocation wrote. When the model's changed_keys strategy
        ran in this invocation those are the rows whose unique key it recorded
        (record_written_keys), found through the model's index on its key, so a test's cost
        follows the change and not the table; otherwise (the model created, or not run) the
        rows whose xmin is newer than the invocation's start. A test whose verdict on a row can
        depend on other rows (unique, relationships, histories' validity) also reads every row
        sharing the tested column's value with one of them, so a duplicate of an old key is
        still seen; a test that judges each value alone (not_null, accepted_values, ranges,
        patterns) does not need them. Anything else (tables rebuilt whole, views, sources,
        whole-table invariants such as row counts, and every test when the var is off: full and
        nightly runs) is tested whole. A test's own `where` config still applies. -#}
    {%- set conditions = [] -%}
    {%- if config.get('where') -%}
        {%- do conditions.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- set parent = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- set whole_table_tests = ['expect_table_row_count_to_equal_other_table'] -%}
    {%- set value_tests = [
        'not_null', 'accepted_values', 'expect_column_values_to_be_between',
        'expect_column_values_to_match_regex'] -%}
    {%- if execute and var('test_changed_rows_only', false)
        and parent and parent.config.materialized == 'incremental'
        and model.test_metadata.name not in whole_table_tests -%}
        {%- set keys = parent.config.unique_key -%}
        {%- set keys = [keys] if keys is string else keys -%}
        {%- set identifier = parent.alias or parent.name -%}
        {%- set recorded = written_keys_relation(identifier) -%}
        {%- if keys and wrote_keys_in_this_invocation(identifier) -%}
            {%- set written -%}
                ({{ keys | join(', ') }}) in (select {{ keys | join(', ') }} from {{ recorded }})
            {%- endset -%}
        {%- else -%}
            {%- set written -%}
                age(xmin) < (
                    select age(started_xid::text::xid) from ops.dbt_invocations
                    where invocation_id = '{{ invocation_id }}'
                )
            {%- endset -%}
        {%- endif -%}
        {%- set column = model.column_name -%}
        {%- if column and model.test_metadata.name not in value_tests -%}
            {%- do conditions.append(
                '(' ~ written ~ ' or ' ~ column ~ ' in (select ' ~ column ~ ' from ' ~ relation ~ ' where ' ~ written ~ '))'
            ) -%}
        {%- else -%}
            {%- do conditions.append(written) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
