{% macro most_frequent(column, condition) -%}
    {#- An aggregate: the most frequent non-null value of `column` among the rows meeting
        `condition`, the smallest on a tie; null when there is none. -#}
    {{ return(adapter.dispatch('most_frequent', 'clutter_haven')(column, condition)) }}
{%- endmacro %}

{% macro default__most_frequent(column, condition) -%}
    {#- mode() takes the first value in the order given: the smallest -#}
    mode() within group (order by {{ column }}) filter (where {{ condition }})
{%- endmacro %}

{% macro spark__most_frequent(column, condition) -%}
    {#- Spark 3.5's mode() picks any of the tied values: sort the distinct values by their
        count, descending, then by value -#}
    {%- set values = 'collect_list(' ~ column ~ ') filter (where ' ~ condition ~ ')' -%}
    try_element_at(
        array_sort(transform(
            array_distinct({{ values }}),
            value -> named_struct('count', -size(filter({{ values }}, each -> each = value)), 'value', value)
        )),
        1
    ).value
{%- endmacro %}
