-- Certificates by ACME and records by DNS update (issue 12). migrations/sqlite/0003 is the
-- same schema in SQLite's types; keep the two in step. Times are Unix seconds (UTC).

-- How the owner delegated the domain: 'host' = only mta-sts.<d> points at us, the owner keeps
-- _mta-sts.<d> and _smtp._tls.<d> in their zone; 'full' = those two are CNAMEs into a zone we
-- control, and we publish their TXT records by RFC 2136 update.
ALTER TABLE domains ADD COLUMN delegation TEXT NOT NULL DEFAULT 'host'
    CHECK (delegation IN ('host', 'full'));

-- One ACME account per directory URL. credentials_sealed: the account's credentials (JSON
-- holding its private key), sealed like certificate keys, with the directory URL as
-- associated data.
CREATE TABLE acme_accounts (
    directory          TEXT PRIMARY KEY,
    credentials_sealed BYTEA NOT NULL,
    created_at         BIGINT NOT NULL
);

-- The certificate work of each domain: when its certificate is due, when to try next after a
-- failure, the last error, and the order lease (exactly one instance orders a given name).
CREATE TABLE acme_domains (
    domain         TEXT PRIMARY KEY REFERENCES domains (name) ON DELETE CASCADE,
    next_renewal   BIGINT,
    next_attempt   BIGINT NOT NULL DEFAULT 0,
    failures       BIGINT NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_error     TEXT,
    last_error_at  BIGINT,
    last_issued_at BIGINT,
    lease_holder   TEXT,
    lease_until    BIGINT
);

-- Challenges being validated, so that any instance can answer the CA's validation request.
-- The key authorization is what the CA fetches in the clear; it is no secret.
CREATE TABLE acme_challenges (
    token             TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('http-01', 'tls-alpn-01')),
    key_authorization TEXT NOT NULL,
    expires_at        BIGINT NOT NULL
);
CREATE INDEX acme_challenges_by_name ON acme_challenges (name, kind);

-- Orders placed, per CA directory: the rate limit every instance shares.
CREATE TABLE acme_orders (
    id        BIGSERIAL PRIMARY KEY,
    directory TEXT NOT NULL,
    domain    TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX acme_orders_by_directory ON acme_orders (directory, at);

-- The TXT records published by RFC 2136 for 'full' domains: what the zone holds now, as last
-- acknowledged by the authoritative server, and the state of the work. Not tied to domains: a
-- removed domain's records must still be withdrawn from the zone.
CREATE TABLE dns_published (
    domain        TEXT PRIMARY KEY,
    sts_value     TEXT,
    tlsrpt_value  TEXT,
    published_at  BIGINT,
    next_attempt  BIGINT NOT NULL DEFAULT 0,
    failures      BIGINT NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_error    TEXT,
    last_error_at BIGINT
);
