{% test expect_column_values_to_match_regex(model, column_name, regex, row_condition=none, is_raw=false, flags="") %}
{#- dbt-expectations' test of the same name and arguments, written here (no package hub).
    POSIX regular expressions (matches_pattern: PostgreSQL's ~, Spark's rlike); flags "i" makes
    the match case-insensitive. -#}

select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and not ({{ matches_pattern(column_name, regex, case_insensitive="i" in flags) }})
    {%- if row_condition %} and {{ row_condition }}{% endif %}

{% endtest %}
