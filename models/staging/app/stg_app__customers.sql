{%- set changed = staged_changed_keys('customers') -%}
{{
    config(
        unique_key='customer_id',
        changed_keys=changed,
        indexes=[{'columns': ['customer_id'], 'unique': true}],
    )
}}

with

base as (

    select * from {{ ref('base_app__customers') }}
    {% if is_incremental() %}
        where {{ in_change_set('customer_id', changed, through_views=true) }}
    {% endif %}

),

final as (

    select
        customer_id,
        email_hash,
        city,
        postal_area,
        country_code,
        has_marketing_opt_in,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
