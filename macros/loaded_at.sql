{% macro loaded_at(load_id_column='_dlt_load_id') -%}
    {#- dlt's load id is the unix time the load started: the time a raw row was loaded. -#}
    {{ return(adapter.dispatch('loaded_at', 'clutter_haven')(load_id_column)) }}
{%- endmacro %}

{% macro default__loaded_at(load_id_column) -%}
    to_timestamp({{ load_id_column }}::double precision)
{%- endmacro %}

{% macro spark__loaded_at(load_id_column) -%}
    {#- to the microsecond exactly as PostgreSQL's to_timestamp(float8) computes it: seconds
        since 2000-01-01 (its epoch) times a million, rounded half to even (rint), in double
        precision; timestamp_seconds() would cut, and rounding the unix microseconds differs in
        the last digit for some load ids -#}
    timestamp_micros(
        cast(rint((cast({{ load_id_column }} as double) - 946684800) * 1000000) as bigint)
        + 946684800000000
    )
{%- endmacro %}
