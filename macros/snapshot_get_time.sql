{% macro postgres__snapshot_get_time() -%}
    {#- Snapshot times as timestamptz, like every timestamp in this project (dbt-postgres's
        default is a timestamp without time zone, which mismatches updated_at). -#}
    now()
{%- endmacro %}
