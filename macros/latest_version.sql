{% macro latest_version(relation, key='id', newest_first=['updated_at', '_dlt_load_id']) -%}
    {#- One row per key: the newest version (raw keeps one row per key after dlt's merge; this
        guards against a source or loader that ever lands two). Written as "no newer version
        exists" rather than DISTINCT ON so PostgreSQL can flatten it: a model that reads a few
        changed keys through the base view then looks up only those keys. `relation` is read
        twice; a CTE passed here must be NOT MATERIALIZED. -#}
    {{ return(adapter.dispatch('latest_version', 'clutter_haven')(relation, key, newest_first)) }}
{%- endmacro %}

{% macro default__latest_version(relation, key, newest_first) -%}
    select * from {{ relation }} as candidate
    where not exists (
        select from {{ relation }} as newer
        where
            newer.{{ key }} = candidate.{{ key }}
            and (newer.{{ newest_first | join(', newer.') }})
            > (candidate.{{ newest_first | join(', candidate.') }})
    )
{%- endmacro %}

{% macro spark__latest_version(relation, key, newest_first) -%}
    {#- The same rows, ranked in one pass: rank() keeps every version no other version of its
        key is newer than, as the anti-join does. The anti-join read `relation` twice, and on
        Spark that is a second pass over the lake's log at every read of a base view (about
        0.4 s of a 1.1 s read at SF 0.01). Adds the column dbt_newest_rank (always 1); the base
        models select their columns by name. A filter on the key still reaches the log: Spark
        pushes it below a window partitioned by the key. -#}
    select * from (
        select
            *,
            rank() over (
                partition by {{ key }}
                order by {{ newest_first | join(' desc, ') }} desc
            ) as dbt_newest_rank
        from {{ relation }}
    ) as ranked
    where dbt_newest_rank = 1
{%- endmacro %}
