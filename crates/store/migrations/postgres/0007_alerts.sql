-- Alerts on TLS-RPT reports (issue 13; decisions D56): one row per domain and kind, claimed by
-- the instance that sends, so that several instances on one store send one alert per incident.
-- kind: 'failures' (failed sessions over the threshold), 'reports-stopped' (a domain that got
-- reports gets none), 'digest' (the daily digest; domain ''). channel: 'webhook' or 'email',
-- each claimed on its own (one that fails is retried without repeating the other). active: the
-- condition holds and was announced; last_sent_at: Unix seconds of the last notification sent
-- (the cooldown's start); detail: what the last notification said, as JSON text.
CREATE TABLE alert_state (
    domain       TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('failures', 'reports-stopped', 'digest')),
    channel      TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    active       INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    last_sent_at BIGINT,
    detail       TEXT,
    PRIMARY KEY (domain, kind, channel)
);
