-- Incident views are read for a planning batch at once: its successors and suppressions by incident.
CREATE INDEX incidents_previous ON incidents(previous_id);
CREATE INDEX suppressions_incident ON suppressions(incident_id);
