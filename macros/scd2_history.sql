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
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list
        if execute else [] -%}
    {%- set incremental = is_incremental() -%}
    {%- set only_changed = incremental and not var('snapshot_whole_table', false) -%}
    {%- set run_time = snapshot_get_time() -%}

with

staged as (

    select * from {{ relation }}
    {% if only_changed %}
        where {{ in_change_set(key, changed) }}
    {% endif %}

),

{% if incremental %}
    history as (

        select * from {{ this }}
        {% if only_changed %}
            where {{ in_change_set(key, changed) }}
        {% endif %}

    ),

    current_versions as (

        select * from history where dbt_valid_to is null

    ),
{% endif %}

new_versions as (

    select
        staged.*,
        md5(
            coalesce(cast(staged.{{ key }} as varchar), '') || '|'
            || coalesce(cast(staged.updated_at as varchar), '')
        ) as dbt_scd_id,
        staged.updated_at as dbt_updated_at,
        staged.updated_at as dbt_valid_from,
        null::timestamptz as dbt_valid_to,
        'False' as dbt_is_deleted
    from staged
    {% if incremental %}
        left join current_versions on staged.{{ key }} = current_versions.{{ key }}
        where
            current_versions.{{ key }} is null
            or current_versions.dbt_valid_from < staged.updated_at
            or current_versions.dbt_is_deleted = 'True'
    {% endif %}

)

{% if incremental %}
    ,

    gone as (

        select current_versions.*
        from current_versions
        left join staged on current_versions.{{ key }} = staged.{{ key }}
        where staged.{{ key }} is null and current_versions.dbt_is_deleted != 'True'

    ),

    closed_history as (

        select
            {% for column in columns %}history.{{ adapter.quote(column) }},
            {% endfor %}history.dbt_scd_id,
            history.dbt_updated_at,
            history.dbt_valid_from,
            case
                when history.dbt_valid_to is not null then history.dbt_valid_to
                when new_versions.{{ key }} is not null then new_versions.dbt_valid_from
                when gone.{{ key }} is not null then {{ run_time }}
            end as dbt_valid_to,
            history.dbt_is_deleted
        from history
        left join new_versions
            on history.{{ key }} = new_versions.{{ key }} and history.dbt_valid_to is null
        left join gone on history.dbt_scd_id = gone.dbt_scd_id

    ),

    deletion_records as (

        select
            {% for column in columns %}gone.{{ adapter.quote(column) }},
            {% endfor %}md5(
                coalesce(cast(gone.dbt_scd_id as varchar), '') || '|'
                || coalesce(cast({{ run_time }} as varchar), '')
            ) as dbt_scd_id,
            {{ run_time }} as dbt_updated_at,
            {{ run_time }} as dbt_valid_from,
            null::timestamptz as dbt_valid_to,
            'True' as dbt_is_deleted
        from gone

    )

    select * from closed_history
    union all
    select * from new_versions
    union all
    select * from deletion_records
{% else %}
    select * from new_versions
{% endif %}
{%- endmacro %}
