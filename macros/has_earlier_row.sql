{% macro has_earlier_row(relation, current, match_column, order_column) -%}
    {#- True when `relation` holds another row with the same (non-null) `match_column` and a
        smaller `order_column` than the row `current`. PostgreSQL: a lookup, so a build that reads
        a few rows checks only theirs; Spark (no EXISTS in a select list): a window over
        `current`'s rows, which are the same rows when `current` is `relation` deduplicated. -#}
    {{ return(adapter.dispatch('has_earlier_row', 'clutter_haven')(relation, current, match_column, order_column)) }}
{%- endmacro %}

{% macro default__has_earlier_row(relation, current, match_column, order_column) -%}
    exists(
        select from {{ relation }} as earlier
        where
            earlier.{{ match_column }} = {{ current }}.{{ match_column }}
            and earlier.{{ order_column }} < {{ current }}.{{ order_column }}
    )
{%- endmacro %}

{% macro spark__has_earlier_row(relation, current, match_column, order_column) -%}
    coalesce(
        min({{ current }}.{{ order_column }}) over (partition by {{ current }}.{{ match_column }})
        < {{ current }}.{{ order_column }}
        and {{ current }}.{{ match_column }} is not null,
        false
    )
{%- endmacro %}
