-- sipbx schema, version 6: call records sorted by duration and by talk time page as fast as
-- by start time (the other orders, caller, dialled and disposition, have their indexes).
-- Each continues by start time, as the list does (ORDER BY key, start_us, id).
-- With the answering extension indexed too, an extension filter (caller, dialled or
-- answered_by) is three index look-ups, so counting its records reads only its rows.

CREATE INDEX cdrs_duration ON cdrs (duration, start_us);
CREATE INDEX cdrs_billsec ON cdrs (billsec, start_us);
CREATE INDEX cdrs_answered ON cdrs (answered_by, start_us);
