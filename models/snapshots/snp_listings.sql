{%- set changed = staged_changed_keys('listings') -%}
{{
    config(
        unique_key='listing_id',
        changed_keys=changed,
        indexes=[
            {'columns': ['listing_id']},
            {'columns': ['dbt_scd_id'], 'unique': true},
        ],
    )
}}

{{ scd2_history(ref('stg_app__listings'), 'listing_id', changed) }}
