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
    {#- The same rows as an anti-join; Spark compares the versions as structs. -#}
    select candidate.* from {{ relation }} as candidate
    left anti join {{ relation }} as newer
        on
            newer.{{ key }} = candidate.{{ key }}
            and struct(newer.{{ newest_first | join(', newer.') }})
            > struct(candidate.{{ newest_first | join(', candidate.') }})
{%- endmacro %}
