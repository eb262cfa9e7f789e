{%- set changed = staged_changed_keys('categories') -%}
{{
    config(
        unique_key='category_id',
        changed_keys=changed,
        indexes=[{'columns': ['category_id'], 'unique': true}],
    )
}}

with

base as (

    select * from {{ ref('base_app__categories') }}
    {% if is_incremental() %}
        where {{ in_change_set('category_id', changed, through_views=true) }}
    {% endif %}

),

final as (

    select
        category_id,
        parent_category_id,
        category_name,
        category_slug,
        created_at,
        updated_at,
        load_id,
        loaded_at
    from base
    where quarantine_reasons = ''

)

select * from final
