-- The store's first schema (SQLite). migrations/postgres/0001_initial.sql is the same schema in
-- PostgreSQL's types; keep the two in step. Times are Unix seconds (UTC), booleans 0/1.
-- (SQLite lets a PRIMARY KEY other than INTEGER hold NULL: those say NOT NULL.)

-- Bumped in every write transaction: other instances poll it (or hear a NOTIFY on PostgreSQL).
CREATE TABLE store_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO store_generation (id, value) VALUES (1, 0);

-- Facts about the store itself, e.g. the sealed key-check value that catches a wrong key at open.
CREATE TABLE store_meta (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

-- A hosted domain and its rollout state (the state machine lives in mtasts-core; this is its data).
CREATE TABLE domains (
    name              TEXT NOT NULL PRIMARY KEY,
    created_at        INTEGER NOT NULL,
    state             TEXT NOT NULL,
    state_since       INTEGER NOT NULL,
    -- the longest max_age of any non-none policy ever published for the domain
    longest_max_age   INTEGER NOT NULL CHECK (longest_max_age >= 0),
    -- when a non-none policy was last replaced by a none policy; NULL while a non-none one is served
    non_none_ended_at INTEGER,
    updated_at        INTEGER NOT NULL
);

-- Every policy ever published for a domain; the current one is the row with the highest id.
CREATE TABLE policies (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    domain       TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
    policy_id    TEXT NOT NULL,
    mode         TEXT NOT NULL CHECK (mode IN ('testing', 'enforce', 'none')),
    max_age      INTEGER NOT NULL CHECK (max_age >= 0),
    mx           TEXT NOT NULL, -- a JSON array of patterns, in policy order
    text         TEXT NOT NULL, -- the canonical policy file, CRLF line ends
    published_at INTEGER NOT NULL
);
CREATE INDEX policies_by_domain ON policies (domain, id);

CREATE TABLE rollout_transitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    domain     TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    forced     BOOLEAN NOT NULL,
    evidence   TEXT
);
CREATE INDEX rollout_transitions_by_domain ON rollout_transitions (domain, id);

-- The certificate served for mta-sts.<domain>. key_sealed: version || nonce || AES-256-GCM
-- ciphertext and tag of the private key PEM, with the domain name as associated data.
CREATE TABLE certificates (
    domain       TEXT NOT NULL PRIMARY KEY REFERENCES domains (name) ON DELETE CASCADE,
    chain_pem    TEXT NOT NULL,
    not_after    INTEGER NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('acme', 'imported')),
    key_sealed   BLOB NOT NULL,
    installed_at INTEGER NOT NULL
);

-- Admin API bearer tokens: only the SHA-256 of the secret is kept.
CREATE TABLE admin_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    hash        BLOB NOT NULL UNIQUE,
    all_domains BOOLEAN NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
-- The domains a token with all_domains = 0 may act on (no foreign key: a token may be made for a
-- domain before it is hosted).
CREATE TABLE admin_token_domains (
    token  INTEGER NOT NULL REFERENCES admin_tokens (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    PRIMARY KEY (token, domain)
);

-- Who did what, when and why; written in the same transaction as the change it records. Not
-- tied to domains: the history outlives a removed domain.
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    domain TEXT,
    detail TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX audit_by_domain ON audit (domain, id);

-- What the drift checker saw: one row per distinct problem, kept open until it is resolved.
CREATE TABLE drift_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain      TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    fix         TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX drift_events_by_domain ON drift_events (domain, id);
