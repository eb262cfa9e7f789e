{%- set changed = staged_changed_keys('customers') -%}
{{
    config(
        unique_key='customer_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['customer_id']},
            {'columns': ['dbt_scd_id'], 'unique': true},
        ],
    )
}}

{{ scd2_history(ref('stg_app__customers'), 'customer_id', changed) }}
