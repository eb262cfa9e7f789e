{% macro assert_session_time_zone() -%}
    {#- on-run-start: stop before any model when this session does not run in the declared
        reporting zone (var reporting_time_zone). Every date the models derive from a
        timestamptz (a cast to date, date_trunc, a date compared with a time) is taken in the
        session's zone; `haven up` gives the platform's roles the zone in this database, and
        haven's dbt calls set PGTZ. A plain dbt against a warehouse whose roles predate that
        would otherwise bucket orders by the server's zone. -#}
    {{ return(adapter.dispatch('assert_session_time_zone', 'clutter_haven')()) }}
{%- endmacro %}

{% macro default__assert_session_time_zone() -%}
    {%- if execute -%}
        {%- set zone = var('reporting_time_zone') -%}
        {#- same offsets in winter and summer: equal zones under any spelling -#}
        {%- set check -%}
            select current_setting('TimeZone') as session_zone, bool_and(
                (probe at time zone current_setting('TimeZone')) = (probe at time zone '{{ zone }}')
            ) as agrees
            from (values (timestamp '2024-01-15 12:00'), (timestamp '2024-07-15 12:00')) as probes (probe)
        {%- endset -%}
        {%- set row = run_query(check).rows[0] -%}
        {%- if not row[1] -%}
            {{ exceptions.raise_compiler_error(
                "This session runs in time zone " ~ row[0] ~ ", not the reporting zone " ~ zone
                ~ "; run `haven up` (it sets the haven roles' zone in this database) or export PGTZ="
                ~ zone ~ " before dbt.") }}
        {%- endif -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{% macro spark__assert_session_time_zone() -%}
    {#- The local Thrift server's sessions run in UTC (spark.sql.session.timeZone). -#}
    {%- if execute and var('reporting_time_zone') != 'UTC' -%}
        {{ exceptions.raise_compiler_error(
            "The Spark engine builds in UTC only; unset HAVEN_REPORTING_TIME_ZONE (now "
            ~ var('reporting_time_zone') ~ ") to build on Spark.") }}
    {%- endif -%}
    select 1
{%- endmacro %}
