{{ config(materialized='view') }}

-- a view: the snapshot is the table, this names its columns for analysts

with

snapshot as (

    select * from {{ ref('snp_customers') }}

),

final as (

    select
        dbt_scd_id as customer_version_id,
        customer_id,
        city,
        postal_area,
        country_code,
        has_marketing_opt_in,
        dbt_valid_from as valid_from,
        dbt_valid_to as valid_to,
        dbt_valid_to is null as is_current,
        coalesce(dbt_is_deleted = 'True', false) as is_deleted
    from snapshot

)

select * from final
