{%- set changed = staged_changed_keys('vendors') -%}
{{
    config(
        unique_key='vendor_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['vendor_id']},
            {'columns': ['dbt_scd_id'], 'unique': true},
        ],
    )
}}

{{ scd2_history(ref('stg_app__vendors'), 'vendor_id', changed) }}
