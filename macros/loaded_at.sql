{% macro loaded_at(load_id_column='_dlt_load_id') -%}
    {#- dlt's load id is the unix time the load started: the time a raw row was loaded. -#}
    {{ return(adapter.dispatch('loaded_at', 'clutter_haven')(load_id_column)) }}
{%- endmacro %}

{% macro default__loaded_at(load_id_column) -%}
    to_timestamp({{ load_id_column }}::double precision)
{%- endmacro %}

{% macro spark__loaded_at(load_id_column) -%}
    {#- rounded to the microsecond as PostgreSQL's to_timestamp() does (timestamp_seconds cuts) -#}
    timestamp_micros(cast(round(cast({{ load_id_column }} as double) * 1000000) as bigint))
{%- endmacro %}
