{% macro scd2_history(relation, key, changed) -%}
    {#- The SCD2 history of `relation` (a staging model), as dbt's snapshot with the timestamp
        strategy on updated_at and hard_deletes='new_record' records it: the same columns, the
        same dbt_scd_id, dbt_updated_at, dbt_valid_from, dbt_valid_to and dbt_is_deleted. Unlike
        dbt's snapshot, which compares the whole relation with every current version on each
        run, an incremental run reads only the changed keys: their staged rows and their history.
        For each it writes the whole history back (the changed_keys strategy replaces it):

        - a staged row that is new, newer than the current version (updated_at), or back after a
          deletion becomes the current version, valid from its updated_at; the version it
          replaces is closed at that time;
        - a key whose current version is live but which is no longer staged (deleted in the
          source, or quarantined) has that version closed now and a deletion record (the last
          values, dbt_is_deleted 'True') opened now.

        With var snapshot_whole_table every key is compared, as dbt's snapshot does: the
        reference for the equality test. -#}
    {#- the staged columns (on Spark without the staged table's key partition, dbt_partition) -#}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name')
        | reject('equalto', 'dbt_partition') | list if execute else [] -%}
    {%- set incremental = is_incremental() -%}
    {#- change sets come from PostgreSQL's watermarks: on Spark every key is compared -#}
    {%- set only_changed = incremental and target.type == 'postgres'
        and not var('snapshot_whole_table', false) -%}
    {%- set run_time = snapshot_get_time() -%}

with

staged as (

    select {{ star(relation, except=['dbt_partition']) }} from {{ relation }}
    {% if only_changed %}
        where {{ in_change_set(key, changed) }}
    {% endif %}

)

{% if incremental %}
    ,

    history as (

        select * from {{ this }}
        {% if only_changed %}
            where {{ in_change_set(key, changed) }}
        {% endif %}

    ),

    -- a key's staged row and recorded versions side by side, each knowing the staged row's
    -- updated_at and the current version: window functions over one sort, no joins, so the
    -- plan does not hang on row estimates (a change set's size is not knowable in advance)
    versions as (

        select
            combined.*,
            max(combined.staged_updated_at) over keyed as incoming_updated_at,
            bool_or(combined.is_staged) over keyed as is_still_staged,
            max(
                case when not combined.is_staged and combined.dbt_valid_to is null then combined.dbt_valid_from end
            ) over keyed as current_valid_from,
            max(
                case when not combined.is_staged and combined.dbt_valid_to is null then combined.dbt_is_deleted end
            ) over keyed as current_is_deleted
        from (
            select
                staged.*,
                {{ as_text('null') }} as dbt_scd_id,
                {{ null_timestamp() }} as dbt_updated_at,
                {{ null_timestamp() }} as dbt_valid_from,
                {{ null_timestamp() }} as dbt_valid_to,
                {{ as_text('null') }} as dbt_is_deleted,
                true as is_staged,
                staged.updated_at as staged_updated_at
            from staged
            union all
            select
                history.*,
                false as is_staged,
                {{ null_timestamp() }} as staged_updated_at
            from history
        ) as combined
        window keyed as (partition by combined.{{ key }})

    ),

    classified as (

        select
            *,
            -- a staged row that is new, newer than the current version, or back after a deletion
            incoming_updated_at is not null and (
                current_valid_from is null
                or current_valid_from < incoming_updated_at
                or current_is_deleted = 'True'
            ) as takes_new_version,
            -- a live current version whose key is no longer staged (deleted, or quarantined)
            not is_still_staged and current_valid_from is not null
            and current_is_deleted != 'True' as is_gone
        from versions

    )

    select
        {% for column in columns %}{{ adapter.quote(column) }},
        {% endfor %}{{ scd_id(key, 'updated_at') }} as dbt_scd_id,
        updated_at as dbt_updated_at,
        updated_at as dbt_valid_from,
        {{ null_timestamp() }} as dbt_valid_to,
        'False' as dbt_is_deleted
    from classified
    where is_staged and takes_new_version

    union all

    select
        {% for column in columns %}{{ adapter.quote(column) }},
        {% endfor %}dbt_scd_id,
        dbt_updated_at,
        dbt_valid_from,
        case
            when dbt_valid_to is not null then dbt_valid_to
            when takes_new_version then incoming_updated_at
            when is_gone then {{ run_time }}
        end as dbt_valid_to,
        dbt_is_deleted
    from classified
    where not is_staged

    union all

    -- the deletion record: the last values, open from now
    select
        {% for column in columns %}{{ adapter.quote(column) }},
        {% endfor %}{{ scd_id('dbt_scd_id', run_time) }} as dbt_scd_id,
        {{ run_time }} as dbt_updated_at,
        {{ run_time }} as dbt_valid_from,
        {{ null_timestamp() }} as dbt_valid_to,
        'True' as dbt_is_deleted
    from classified
    where not is_staged and dbt_valid_to is null and is_gone
{% else %}
    select
        staged.*,
        {{ scd_id('staged.' ~ key, 'staged.updated_at') }} as dbt_scd_id,
        staged.updated_at as dbt_updated_at,
        staged.updated_at as dbt_valid_from,
        {{ null_timestamp() }} as dbt_valid_to,
        'False' as dbt_is_deleted
    from staged
{% endif %}
{%- endmacro %}


{% macro scd_id(key, valid_from) -%}
    {#- A version's id as dbt's snapshot makes it: the md5 of the key and the time, as text. -#}
    {{ return(adapter.dispatch('scd_id', 'clutter_haven')(key, valid_from)) }}
{%- endmacro %}

{% macro default__scd_id(key, valid_from) -%}
    md5(coalesce(cast({{ key }} as varchar), '') || '|' || coalesce(cast({{ valid_from }} as varchar), ''))
{%- endmacro %}

{% macro spark__scd_id(key, valid_from) -%}
    {#- the time as PostgreSQL writes a timestamptz in UTC (2024-05-01 10:00:00.25+00), so both
        engines give a version the same id -#}
    md5(concat(
        coalesce(cast({{ key }} as string), ''),
        '|',
        coalesce(concat(
            date_format({{ valid_from }}, 'yyyy-MM-dd HH:mm:ss'),
            regexp_replace(format_string('.%06d', pmod(unix_micros({{ valid_from }}), 1000000)), '\\.?0+$', ''),
            '+00'
        ), '')
    ))
{%- endmacro %}
