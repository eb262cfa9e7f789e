{% macro spark__apply_grants(relation, grant_config, should_revoke=True) -%}
    {#- Spark's Thrift server has no SQL authorization (GRANT is "Operation not allowed"): the
        marts' and features' grants apply on PostgreSQL only. On Spark, who reads a table is
        decided by who can reach the Thrift port and the warehouse files (README: The Spark
        engine). -#}
{%- endmacro %}
