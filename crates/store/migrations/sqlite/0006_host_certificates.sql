-- Certificates for service host names that are not a hosted domain's mta-sts.<domain>: the
-- HTTPS report intake's own host ([intake] host, e.g. tlsrpt.provider.example) and the SMTP
-- receiver's name ([smtp] hostname). migrations/postgres/0006 is the same in PostgreSQL's
-- types. The key is sealed like a domain's (associated data "host:<name>", so a sealed key
-- cannot be moved between a host row and a domain row).
CREATE TABLE host_certificates (
    name         TEXT NOT NULL PRIMARY KEY,
    chain_pem    TEXT NOT NULL,
    not_after    INTEGER NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('acme', 'imported')),
    key_sealed   BLOB NOT NULL,
    installed_at INTEGER NOT NULL
);
