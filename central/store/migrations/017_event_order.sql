-- Issue 17: events out of order.
-- The contract says (edge_id, seq) identifies an alert event: one row per pair, whatever its alert_id.
-- Rows that already break this (stored before the check) keep the first one received.
-- incident_alerts.last_seq: the highest seq applied to an alert's state; an older event arriving later
-- (an update after its end, a new after its end) is kept in the history but never changes that state.
DELETE FROM alert_events WHERE id NOT IN (SELECT MIN(id) FROM alert_events GROUP BY edge_id, seq);
CREATE UNIQUE INDEX alert_events_edge_seq ON alert_events(edge_id, seq);
ALTER TABLE incident_alerts ADD COLUMN last_seq BIGINT
