{#- The changed_keys strategy on Spark. A parquet table can neither delete nor update a row, but a
    dynamic partition overwrite replaces the partitions a statement writes (and may read the
    table it replaces). So every changed_keys model is partitioned on Spark by a hash of its
    unique key into a fixed number of key partitions (the column dbt_partition, which only the
    Spark tables have), and a run rewrites the partitions that hold a key of its change set:
    the model's new rows for those keys, and the partitions' other rows as they were. What a
    run computes is its change set; what it writes is the partitions the change set touches.

    dbt-spark accepts only its own strategies; these overrides (the root project's macros
    win over an adapter's) add changed_keys and pass every other strategy on unchanged. -#}

{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy == 'changed_keys' -%}{{ return(raw_strategy) }}{%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{%- endmacro %}


{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
    {%- if strategy == 'changed_keys' -%}
        {{ return(get_incremental_changed_keys_sql({
            'target_relation': target,
            'temp_relation': source,
            'unique_key': unique_key,
            'dest_columns': adapter.get_columns_in_relation(target),
        })) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
{%- endmacro %}


{% macro key_partition(unique_key) -%}
    {#- The key partition of a row: a hash of its unique key into var('spark_key_partitions')
        partitions. -#}
    {%- set key_columns = [unique_key] if unique_key is string else unique_key -%}
    pmod(xxhash64({{ key_columns | join(', ') }}), {{ var('spark_key_partitions') }})
{%- endmacro %}


{% macro spark__create_table_as(temporary, relation, compiled_code, language='sql') -%}
    {#- A changed_keys model's table (and the temporary view of an incremental run's rows) gets
        its key partition; everything else is created as dbt-spark creates it. -#}
    {%- if language == 'sql' and config.get('materialized') == 'incremental'
        and config.get('incremental_strategy') == 'changed_keys' -%}
        {%- set keyed -%}
            select *, {{ key_partition(config.get('unique_key')) }} as dbt_partition
            from (
                {{ compiled_code }}
            ) as model_rows
        {%- endset -%}
        {%- if temporary -%}
            {{ create_temporary_view(relation, keyed) }}
        {%- else -%}
            create table {{ relation }}
            using {{ config.get('file_format', 'parquet') }}
            partitioned by (dbt_partition)
            as {{ keyed }}
        {%- endif -%}
    {%- else -%}
        {{ dbt.spark__create_table_as(temporary, relation, compiled_code, language) }}
    {%- endif -%}
{%- endmacro %}


{% macro spark__changed_keys_sql(arg_dict, changed, key_columns) -%}
    {#- Run time: write the model's rows and the keys to rebuild once, to two scratch tables
        (a view, or the change set's SQL, would be computed again by every statement that reads
        it), find the key partitions holding a key to rebuild (one pass over the target's keys),
        drop those left with no row (a dynamic overwrite only replaces the partitions it
        writes), and rewrite the others: the new rows, and the rows of other keys as they were.
        The scratch tables are dropped at the end (a run that failed before leaves them, and
        the next run replaces them). -#}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set new_rows = target.incorporate(path={'identifier': target.identifier ~ '__dbt_rows'}) -%}
    {%- set keys = key_columns | join(', ') -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | list -%}
    {%- set rebuilt_keys = target.incorporate(path={'identifier': target.identifier ~ '__dbt_keys'}) -%}
    {%- set rebuilt = rebuilt_keys ~ ' as rebuilt' -%}
    {%- set same_key -%}
        {%- for column in key_columns -%}
            existing.{{ column }} = rebuilt.{{ column }}{{ " and " if not loop.last }}
        {%- endfor -%}
    {%- endset -%}
    {%- for scratch in [new_rows, rebuilt_keys] -%}
        {%- do adapter.execute('drop table if exists ' ~ scratch) -%}
    {%- endfor -%}
    {%- do adapter.execute(
        'create table ' ~ new_rows ~ ' using parquet as select * from ' ~ arg_dict['temp_relation']
    ) -%}
    {%- set keys_query -%}
        create table {{ rebuilt_keys }} using parquet as
        select {{ keys }} from ({{ changed }}) as changed_keys ({{ keys }})
        union
        select {{ keys }} from {{ new_rows }}
    {%- endset -%}
    {%- do adapter.execute(keys_query) -%}
    {%- set partitions_query -%}
        select dbt_partition, max(has_rows) as has_rows
        from (
            select dbt_partition, 1 as is_touched, 1 as has_rows from {{ new_rows }}
            union all
            select
                existing.dbt_partition,
                case when rebuilt.{{ key_columns[0] }} is null then 0 else 1 end as is_touched,
                case when rebuilt.{{ key_columns[0] }} is null then 1 else 0 end as has_rows
            from {{ target }} as existing
            left join {{ rebuilt }} on {{ same_key }}
        ) as key_partitions
        group by dbt_partition
        having max(is_touched) = 1
    {%- endset -%}
    {%- set touched = run_query(partitions_query).rows -%}
    {%- set emptied = touched | selectattr(1, 'equalto', 0) | map(attribute=0) | list -%}
    {%- set written = touched | selectattr(1, 'equalto', 1) | map(attribute=0) | list -%}
    {%- if emptied -%}
        {%- set specs = [] -%}
        {%- for partition in emptied -%}
            {%- do specs.append('partition (dbt_partition = ' ~ partition ~ ')') -%}
        {%- endfor -%}
        {%- do adapter.execute('alter table ' ~ target ~ ' drop if exists ' ~ specs | join(', ')) -%}
    {%- endif -%}
    {%- if written -%}
        {#- only the partitions written are replaced (the local cluster's default; a cluster of
            your own may default to replacing the whole table) -#}
        {%- do adapter.execute('set spark.sql.sources.partitionOverwriteMode = DYNAMIC') -%}
        {%- set rewrite -%}
            insert overwrite table {{ target }} partition (dbt_partition)
            select {{ columns | join(', ') }}
            from (
                select {{ columns | join(', ') }} from {{ new_rows }}
                union all
                select
                    {%- for column in columns %} existing.{{ column }}{{ "," if not loop.last }}{% endfor %}
                from {{ target }} as existing
                left anti join {{ rebuilt }} on {{ same_key }}
                where existing.dbt_partition in ({{ written | join(', ') }})
            ) as rows_to_write
            distribute by dbt_partition
        {%- endset -%}
        {%- do adapter.execute(rewrite) -%}
    {%- endif -%}
    {%- do adapter.execute('drop table ' ~ rebuilt_keys) -%}
    drop table {{ new_rows }}
{%- endmacro %}
