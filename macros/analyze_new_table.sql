{% macro analyze_new_table() -%}
    {#- Post-hook: give a freshly built table planner statistics at once, so the models and tests
        that read it next (and describe_relation's row estimate) are not planned blind. An
        incremental table is analysed again when this build changed more rows than autovacuum's
        own threshold (50 + 10 %), at once rather than up to a minute later; smaller changes are
        left to autovacuum, as they barely move the statistics and ANALYZE would cost more than
        the change. (Only this transaction's own counts: an ANALYZE inside the build's
        transaction does not reset the counts the commit flushes afterwards.) -#}
    {%- if config.get('materialized') in ('table', 'incremental') and target.type == 'postgres' -%}
        do $analyze$
        begin
            if not exists (
                select from pg_stat_user_tables as totals
                inner join pg_stat_xact_user_tables as this_build using (relid)
                where
                    totals.relid = '{{ this }}'::regclass
                    and coalesce(totals.last_analyze, totals.last_autoanalyze) is not null
                    and this_build.n_tup_ins + this_build.n_tup_upd + this_build.n_tup_del
                    <= 50 + 0.1 * (
                        select greatest(reltuples, 0) from pg_class where oid = totals.relid
                    )
            ) then
                analyze {{ this }};
            end if;
        end
        $analyze$
    {%- endif -%}
{%- endmacro %}
