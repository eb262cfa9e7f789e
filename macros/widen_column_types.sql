{% macro postgres__process_schema_changes(on_schema_change, source_relation, target_relation) %}
    {#- dbt's own check, with one exception for a model that fails on a schema change: when
        nothing changed but some columns became wider of the same kind (a numeric with more
        digits, a longer varchar, integer to bigint), the target's columns are widened in place,
        values kept and column order too (dbt's alter_column_type moves the column last, which
        breaks the histories' union of `history.*`). raw_app widens a column when the application
        widens it (ingestion/app/helpers.py widen_columns), so the change flows down without a
        full refresh; anything else still fails. -#}
    {% if on_schema_change != 'fail' %}
        {{ return(dbt.default__process_schema_changes(on_schema_change, source_relation, target_relation)) }}
    {% endif %}
    {% set changes = check_for_schema_changes(source_relation, target_relation) %}
    {% if not changes['schema_changed'] %}
        {{ return(changes['source_columns']) }}
    {% endif %}
    {% set only_wider = changes['source_not_in_target'] == [] and changes['target_not_in_source'] == [] %}
    {% for change in changes['new_target_types'] %}
        {% set old = changes['target_columns'] | selectattr('name', 'equalto', change['column_name']) | first %}
        {% set new = changes['source_columns'] | selectattr('name', 'equalto', change['column_name']) | first %}
        {% if not is_wider_column(old, new) %}
            {% set only_wider = false %}
        {% endif %}
    {% endfor %}
    {% if not only_wider %}
        {{ return(dbt.default__process_schema_changes(on_schema_change, source_relation, target_relation)) }}
    {% endif %}
    {% set relation = target_relation.include(database=false) %}
    {% for change in changes['new_target_types'] %}
        {% do log('widening ' ~ relation ~ '.' ~ change['column_name'] ~ ' to ' ~ change['new_type'], info=true) %}
        {% call statement('widen_column_type') %}
            {#- a view on the model blocks the change; the views downstream are built again
                later in this invocation, after the model -#}
            do $widen$
            declare
                dependent regclass;
            begin
                for dependent in
                    select distinct rewrite.ev_class::regclass
                    from pg_depend as dependency
                    inner join pg_rewrite as rewrite on rewrite.oid = dependency.objid
                    where dependency.refobjid = '{{ relation }}'::regclass
                        and rewrite.ev_class <> dependency.refobjid
                loop
                    execute format('drop view if exists %s cascade', dependent);
                end loop;
            end
            $widen$;
            alter table {{ relation }} alter column {{ adapter.quote(change['column_name']) }}
                type {{ change['new_type'] }}
        {% endcall %}
    {% endfor %}
    {{ return(changes['source_columns']) }}
{% endmacro %}


{% macro is_wider_column(old, new) %}
    {#- True when every value of column `old` fits column `new` unchanged. -#}
    {% if old.is_integer() and new.is_integer() %}
        {% set sizes = {'smallint': 2, 'integer': 4, 'int': 4, 'bigint': 8} %}
        {{ return(sizes.get(new.dtype | lower, 0) >= sizes.get(old.dtype | lower, 9)) }}
    {% elif old.is_numeric() and new.is_numeric() %}
        {% if new.numeric_precision is none %}
            {{ return(true) }}
        {% elif old.numeric_precision is none %}
            {{ return(false) }}
        {% endif %}
        {{ return(new.numeric_scale >= old.numeric_scale
            and new.numeric_precision - new.numeric_scale >= old.numeric_precision - old.numeric_scale) }}
    {% elif old.is_string() and new.is_string() %}
        {{ return(old.can_expand_to(new) or new.string_size() >= old.string_size()) }}
    {% endif %}
    {{ return(false) }}
{% endmacro %}
