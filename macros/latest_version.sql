{% macro latest_version(relation, key='id', newest_first='updated_at desc, _dlt_load_id desc') -%}
    {#- One row per key: the newest version (raw keeps one row per key after dlt's merge; this
        guards against a source or loader that ever lands two). -#}
    select distinct on ({{ key }}) *
    from {{ relation }}
    order by {{ key }} asc, {{ newest_first }}
{%- endmacro %}
