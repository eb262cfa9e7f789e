with

source as {{ not_materialized() }} (

    select * from {{ source('app', 'categories') }}
    where _haven_deleted_at is null

),

latest as (

    {{ latest_version('source') }}

),

renamed as (

    select
        id as category_id,
        parent_id as parent_category_id,
        name as category_name,
        slug as category_slug,
        created_at,
        updated_at,
        _dlt_load_id as load_id,
        {{ loaded_at() }} as loaded_at
    from latest

),

checked as (

    select
        *,
        {{ quarantine_reasons({
            'NAME_MISSING': "category_name is null or category_name = ''",
        }) }} as quarantine_reasons
    from renamed

)

select * from checked
