-- One open drift event per domain and kind, held by the database: instances that record the
-- same drift at the same moment (every instance runs the checker) update one row instead of
-- inserting two. Duplicates from before are closed first, keeping the newest open.
UPDATE drift_events SET resolved_at = last_seen
WHERE resolved_at IS NULL
  AND id NOT IN (SELECT MAX(id) FROM drift_events WHERE resolved_at IS NULL GROUP BY domain, kind);
CREATE UNIQUE INDEX drift_events_one_open ON drift_events (domain, kind) WHERE resolved_at IS NULL;
