{#- dbt's unit tests on Spark over the Thrift server (dbt-adapters#481). The unit test
    materialization creates its temporary view with run_query(), which fetches a result; the
    Thrift server answers DDL with a result set whose fetch has no columns, and PyHive fails on
    it ('NoneType' object is not iterable). So in a unit test this creates the view as a plain
    statement and hands run_query() a query with a real (empty) result. -#}

{% macro spark__get_create_table_as_sql(temporary, relation, sql) -%}
    {%- if temporary and model is defined and model.resource_type == 'unit_test' -%}
        {%- call statement('create_unit_test_view') -%}
            {{ create_table_as(true, relation, sql) }}
        {%- endcall -%}
        select * from {{ relation }} limit 0
    {%- else -%}
        {{ create_table_as(temporary, relation, sql) }}
    {%- endif -%}
{%- endmacro %}
