-- TLS-RPT reports received (issue 13). migrations/postgres/0004 is the same schema in
-- PostgreSQL's types; keep the two in step. Times are Unix seconds (UTC); days are whole UTC
-- days since 1970-01-01 (the day a report's date-range begins).

-- One row per report, deduplicated by organization + report-id: the first copy is kept, later
-- ones only counted. raw_json: the JSON document as the reporter sent it (after gzip and MIME
-- decoding; at most core's MAX_RAW_JSON bytes, raw_size says how large it was); normalised:
-- the report as core read it, with its repairs (D25), as JSON. policy_domain: the first
-- policy's domain ('' when the reporter left it out), for listing; the per-policy rows below
-- are what aggregates read.
CREATE TABLE reports (
    id            INTEGER NOT NULL PRIMARY KEY,
    organization  TEXT NOT NULL,
    report_id     TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    contact       TEXT,
    begin_at      INTEGER NOT NULL,
    end_at        INTEGER NOT NULL,
    success       INTEGER NOT NULL CHECK (success >= 0),
    failure       INTEGER NOT NULL CHECK (failure >= 0),
    received_at   INTEGER NOT NULL,
    via           TEXT NOT NULL CHECK (via IN ('https', 'smtp', 'imap', 'file')),
    source        TEXT,
    copies        INTEGER NOT NULL DEFAULT 1 CHECK (copies >= 1),
    last_copy_at  INTEGER,
    raw_json      BLOB NOT NULL,
    raw_size      INTEGER NOT NULL,
    normalised    TEXT NOT NULL,
    UNIQUE (organization, report_id)
);
CREATE INDEX reports_domain_begin ON reports (policy_domain, begin_at);
CREATE INDEX reports_received ON reports (received_at);

-- One row per policies[] element of a report: sessions per policy domain and day.
CREATE TABLE report_policies (
    report        INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_type   TEXT NOT NULL,
    day           INTEGER NOT NULL,
    success       INTEGER NOT NULL CHECK (success >= 0),
    failure       INTEGER NOT NULL CHECK (failure >= 0),
    PRIMARY KEY (report, idx)
);
CREATE INDEX report_policies_domain_day ON report_policies (policy_domain, day);

-- One row per failure-details[] element: failed sessions by result type, receiving MX and
-- sending IP ('' where the reporter left them out).
CREATE TABLE report_failures (
    report        INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    day           INTEGER NOT NULL,
    result_type   TEXT NOT NULL,
    receiving_mx  TEXT NOT NULL,
    sending_ip    TEXT NOT NULL,
    receiving_ip  TEXT NOT NULL,
    sessions      INTEGER NOT NULL CHECK (sessions >= 0)
);
CREATE INDEX report_failures_domain_day ON report_failures (policy_domain, day);
CREATE INDEX report_failures_report ON report_failures (report);
