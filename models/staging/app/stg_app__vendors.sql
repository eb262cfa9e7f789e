{%- set changed = staged_changed_keys('vendors') -%}
{{
    config(
        unique_key='vendor_id',
        changed_keys=changed,
        indexes=[{'columns': ['vendor_id'], 'unique': true}],
    )
}}

with

base as (

    select * from {{ ref('base_app__vendors') }}
    {% if is_incremental() %}
        where {{ in_change_set('vendor_id', changed, through_views=true) }}
    {% endif %}

),

final as (

    select
        vendor_id,
        vendor_name,
        vendor_type,
        email_hash,
        city,
        postal_area,
        country_code,
        commission_rate,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
