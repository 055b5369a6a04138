-- Deposit addresses: one per invoice, derived from the platform account xpub at m/44'/195'/0'/0/i.
-- The index comes from a sequence: sequences are not rolled back, so an index is never handed out
-- twice (a gap is harmless; a reused address would mix two invoices' payments).
-- No private key is stored here or anywhere online: only the address and the xpub's fingerprint.

CREATE SEQUENCE IF NOT EXISTS deposit_address_index_seq
    AS bigint MINVALUE 0 START WITH 0 MAXVALUE 2147483647 NO CYCLE;

CREATE TABLE IF NOT EXISTS deposit_addresses (
    derivation_index  bigint      NOT NULL CHECK (derivation_index BETWEEN 0 AND 2147483647),
    address           text        NOT NULL,
    invoice_id        text        NOT NULL,
    xpub_fingerprint  text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deposit_addresses_pkey PRIMARY KEY (xpub_fingerprint, derivation_index),
    CONSTRAINT deposit_addresses_address_key UNIQUE (address),
    CONSTRAINT deposit_addresses_invoice_key UNIQUE (invoice_id)
);
