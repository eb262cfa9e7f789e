{% macro matches_pattern(expression, pattern, case_insensitive=true) -%}
    {#- A POSIX regular expression match, case-insensitive unless told otherwise. Write `[.]`
        rather than `\.` in the pattern: Spark unescapes backslashes in string literals. -#}
    {{ return(adapter.dispatch('matches_pattern', 'clutter_haven')(expression, pattern, case_insensitive)) }}
{%- endmacro %}

{% macro default__matches_pattern(expression, pattern, case_insensitive) -%}
    {{ expression }} {{ '~*' if case_insensitive else '~' }} '{{ pattern }}'
{%- endmacro %}

{% macro spark__matches_pattern(expression, pattern, case_insensitive) -%}
    {{ expression }} rlike '{{ "(?i)" if case_insensitive }}{{ pattern }}'
{%- endmacro %}
