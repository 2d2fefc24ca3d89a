-- Certificates for service host names that are not a hosted domain's mta-sts.<domain>: the
-- HTTPS report intake's own host ([intake] host, e.g. tlsrpt.provider.example) and the SMTP
-- receiver's name ([smtp] hostname). migrations/sqlite/0006 is the same in SQLite's
-- types. The key is sealed like a domain's (associated data "host:<name>", so a sealed key
-- cannot be moved between a host row and a domain row).
CREATE TABLE host_certificates (
    name         TEXT NOT NULL PRIMARY KEY,
    chain_pem    TEXT NOT NULL,
    not_after    BIGINT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('acme', 'imported')),
    key_sealed   BYTEA NOT NULL,
    installed_at BIGINT NOT NULL
);
