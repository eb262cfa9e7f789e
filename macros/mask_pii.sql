{% macro mask_pii(column, kind) -%}
    {#- The one place PII is masked. email: HMAC-SHA256 of the normalised address, built from
        PostgreSQL's sha256() and the key's inner and outer pads (haven derives them from
        HAVEN_PII_HASH_KEY; the key is never in the repository); postal_code: first three
        characters. Names, phone numbers and street addresses are never selected past staging. -#}
    {%- if kind == 'email' -%}
        encode(
            sha256(
                decode('{{ env_var("HAVEN_PII_HMAC_OUTER_PAD") }}', 'hex')
                || sha256(
                    decode('{{ env_var("HAVEN_PII_HMAC_INNER_PAD") }}', 'hex')
                    || convert_to(lower(trim({{ column }})), 'UTF8')
                )
            ),
            'hex'
        )
    {%- elif kind == 'postal_code' -%}
        left(upper(replace({{ column }}, ' ', '')), 3)
    {%- else -%}
        {{ exceptions.raise_compiler_error("mask_pii: unknown kind " ~ kind) }}
    {%- endif -%}
{%- endmacro %}
