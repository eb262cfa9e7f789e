{% macro analyze_new_table() -%}
    {#- Post-hook: give a freshly built table planner statistics at once, so the models and tests
        that read it next (and describe_relation's row estimate) are not planned blind. A table
        analysed before, the incremental case, is left to autovacuum: a small change barely
        moves its statistics and ANALYZE would cost more than the change. -#}
    {%- if config.get('materialized') in ('table', 'incremental') -%}
        do $analyze$
        begin
            if not exists (
                select from pg_stat_user_tables
                where relid = '{{ this }}'::regclass and coalesce(last_analyze, last_autoanalyze) is not null
            ) then
                analyze {{ this }};
            end if;
        end
        $analyze$
    {%- endif -%}
{%- endmacro %}
