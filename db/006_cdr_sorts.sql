-- sipbx schema, version 6: call records sorted by duration and by talk time page as fast as
-- by start time (the other orders, caller, dialled and disposition, have their indexes).
-- Each continues by start time, as the list does (ORDER BY key, start_us, id).

CREATE INDEX cdrs_duration ON cdrs (duration, start_us);
CREATE INDEX cdrs_billsec ON cdrs (billsec, start_us);
