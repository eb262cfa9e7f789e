{%- set checked_tables = [
    ('categories', 'category_id'),
    ('vendors', 'vendor_id'),
    ('customers', 'customer_id'),
    ('listings', 'listing_id'),
    ('orders', 'order_id'),
    ('order_items', 'order_item_id'),
    ('payments', 'payment_id'),
    ('shipments', 'shipment_id'),
    ('refunds', 'refund_id'),
    ('reviews', 'review_id'),
    ('order_status_events', 'order_status_event_id'),
] -%}
{%- set changed -%}
    {%- for table, _ in checked_tables %}
    select '{{ table }}' as source_table, changed.id as source_key
    from ({{ staged_changed_keys(table) }}) as changed
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endset -%}
{{
    config(
        unique_key=['source_table', 'source_key'],
        changed_keys=changed,
        indexes=[{'columns': ['source_table', 'source_key'], 'unique': true}],
    )
}}

with

{% for table, key in checked_tables %}
    {{ table }}_failed as (

        select
            '{{ table }}' as source_table,
            {{ key }} as source_key,
            {{ split_text('quarantine_reasons', ',') }} as reason_codes,
            load_id,
            loaded_at,
            {{ row_as_json(ref('base_app__' ~ table), 'quarantine_reasons') }} as row_data
        from {{ ref('base_app__' ~ table) }}
        where
            quarantine_reasons != ''
            and {{ in_change_set(key, staged_changed_keys(table), through_views=true) if is_incremental() else 'true' }}

    ),

{% endfor %}
unioned as (

    {% for table, _ in checked_tables %}
        select * from {{ table }}_failed
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        source_table,
        source_key,
        reason_codes,
        load_id,
        loaded_at,
        row_data,
        source_table || ':' || source_key as quarantined_row_id,
        current_timestamp as quarantined_at
    from unioned

)

select * from final
