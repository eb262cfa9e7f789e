{{ config(materialized='table') }}

with

categories as (

    select * from {{ ref('stg_app__categories') }}

),

final as (

    select
        child.category_id,
        child.category_name,
        child.category_slug,
        coalesce(parent.category_id, child.category_id) as top_category_id,
        coalesce(parent.category_name, child.category_name) as top_category_name,
        child.parent_category_id is null as is_top_level
    from categories as child
    left join categories as parent on child.parent_category_id = parent.category_id

)

select * from final
