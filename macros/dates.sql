{#- Date arithmetic the project needs beyond dbt's cross-database macros (dbt.datediff,
    dbt.dateadd, ...): each is one PostgreSQL expression and its Spark equivalent. -#}

{% macro date_series(start_date, end_date, step) -%}
    {#- In a select list: one row per date from start_date to end_date, every `step` (day, month). -#}
    {{ return(adapter.dispatch('date_series', 'clutter_haven')(start_date, end_date, step)) }}
{%- endmacro %}

{% macro default__date_series(start_date, end_date, step) -%}
    cast(generate_series({{ start_date }}, {{ end_date }}, interval '1 {{ step }}') as date)
{%- endmacro %}

{% macro spark__date_series(start_date, end_date, step) -%}
    explode(sequence(cast({{ start_date }} as date), cast({{ end_date }} as date), interval 1 {{ step }}))
{%- endmacro %}


{% macro iso_day_of_week(day) -%}
    {#- 1 for Monday to 7 for Sunday. -#}
    {{ return(adapter.dispatch('iso_day_of_week', 'clutter_haven')(day)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(day) -%}
    cast(extract(isodow from {{ day }}) as integer)
{%- endmacro %}

{% macro spark__iso_day_of_week(day) -%}
    extract(dayofweek_iso from {{ day }})
{%- endmacro %}


{% macro format_date(day, format) -%}
    {#- A date as text, in one of PostgreSQL's to_char formats that Spark's date_format also has. -#}
    {{ return(adapter.dispatch('format_date', 'clutter_haven')(day, format)) }}
{%- endmacro %}

{% macro default__format_date(day, format) -%}
    to_char({{ day }}, '{{ format }}')
{%- endmacro %}

{% macro spark__format_date(day, format) -%}
    {%- set spark_formats = {'Dy': 'E', 'YYYY-MM': 'yyyy-MM', 'YYYY-MM-DD': 'yyyy-MM-dd'} -%}
    {%- if format not in spark_formats -%}
        {{ exceptions.raise_compiler_error("format_date: no Spark pattern for '" ~ format ~ "'; add it to spark__format_date") }}
    {%- endif -%}
    date_format({{ day }}, '{{ spark_formats[format] }}')
{%- endmacro %}


{% macro hours_between(start_time, end_time) -%}
    {#- The hours from start_time to end_time as a decimal rounded to 6 places (3.6 ms): both
        engines give the same number (unrounded, PostgreSQL's division carries 16 places and
        Spark's 12). -#}
    {{ return(adapter.dispatch('hours_between', 'clutter_haven')(start_time, end_time)) }}
{%- endmacro %}

{% macro default__hours_between(start_time, end_time) -%}
    round(extract(epoch from {{ end_time }} - {{ start_time }}) / 3600.0, 6)
{%- endmacro %}

{% macro spark__hours_between(start_time, end_time) -%}
    round((unix_micros({{ end_time }}) - unix_micros({{ start_time }})) / 3600000000.0, 6)
{%- endmacro %}


{% macro null_timestamp() -%}
    {#- A typed null of the project's timestamp type: timestamptz on PostgreSQL, Spark's timestamp
        (which is with a time zone: an instant shown in the session's zone). -#}
    {{ return(adapter.dispatch('null_timestamp', 'clutter_haven')()) }}
{%- endmacro %}

{% macro default__null_timestamp() -%}
    null::timestamptz
{%- endmacro %}

{% macro spark__null_timestamp() -%}
    cast(null as timestamp)
{%- endmacro %}
