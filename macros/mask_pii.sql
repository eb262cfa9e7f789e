{% macro mask_pii(column, kind) -%}
    {#- The one place PII is masked. email: HMAC-SHA256 of the normalised address, built from
        the engine's SHA-256 and the key's inner and outer pads, read from a table only the
        transformer may read (haven writes them from HAVEN_PII_HASH_KEY; no key material is in
        compiled SQL or the environment); postal_code: first three characters. Names, phone
        numbers and street addresses are never selected past staging. -#}
    {%- if kind == 'email' -%}
        {{ return(adapter.dispatch('hmac_email', 'clutter_haven')(column)) }}
    {%- elif kind == 'postal_code' -%}
        left(upper(replace({{ column }}, ' ', '')), 3)
    {%- else -%}
        {{ exceptions.raise_compiler_error("mask_pii: unknown kind " ~ kind) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__hmac_email(column) -%}
    encode(
        sha256(
            decode((select outer_pad from {{ source('haven_private', 'pii_key') }}), 'hex')
            || sha256(
                decode((select inner_pad from {{ source('haven_private', 'pii_key') }}), 'hex')
                || convert_to(lower(trim({{ column }})), 'UTF8')
            )
        ),
        'hex'
    )
{%- endmacro %}

{% macro spark__hmac_email(column) -%}
    {#- The same HMAC-SHA256 with Spark's sha2() and unhex(); the key table is Spark's
        haven_private.pii_key (the Thrift server enforces no grants: see the README). -#}
    sha2(
        concat(
            unhex((select outer_pad from {{ source('haven_private', 'pii_key') }})),
            unhex(sha2(
                concat(
                    unhex((select inner_pad from {{ source('haven_private', 'pii_key') }})),
                    encode(lower(trim({{ column }})), 'UTF-8')
                ),
                256
            ))
        ),
        256
    )
{%- endmacro %}
