{% macro loaded_at(load_id_column='_dlt_load_id') -%}
    {#- dlt's load id is the unix time the load started: the time a raw row was loaded. -#}
    to_timestamp({{ load_id_column }}::double precision)
{%- endmacro %}
