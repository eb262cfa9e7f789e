with

base as (

    select * from {{ ref('base_app__categories') }}

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
