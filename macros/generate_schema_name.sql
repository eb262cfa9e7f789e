{% macro generate_schema_name(custom_schema_name, node) -%}
    {#- The folder's schema is the schema: staging, quarantine, analytics, ml (no target prefix). -#}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
