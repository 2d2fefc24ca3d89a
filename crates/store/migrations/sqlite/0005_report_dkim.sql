-- The DKIM verdict of the mail a report came in (issue 13, RFC 8460 §3; decisions D52): NULL
-- when the report did not come by mail or the mail was not checked (HTTPS, files), else 'pass'
-- (a valid signature; dkim_detail names the signing domain), 'fail' (signatures, none valid;
-- dkim_detail says why), 'none' (unsigned) or 'temperror' (the key could not be looked up).
-- Recorded for the first copy only, like the other arrival facts.
ALTER TABLE reports ADD COLUMN dkim TEXT CHECK (dkim IN ('pass', 'fail', 'none', 'temperror'));
ALTER TABLE reports ADD COLUMN dkim_detail TEXT;
