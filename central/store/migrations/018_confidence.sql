-- Issue 16: the procedure (checklist and contacts) an incident follows, as it was when chosen (JSON);
-- ticked steps are incident_events of kind 'step'.
-- And one calibrated confidence per alert (central/response_config.py ConfidenceConfig), kept with
-- the alert's latest state and with each event, so the timeline shows the same number as the incident.
ALTER TABLE incident_alerts ADD COLUMN confidence DOUBLE PRECISION;
ALTER TABLE alert_events ADD COLUMN confidence DOUBLE PRECISION;
ALTER TABLE incidents ADD COLUMN procedure TEXT
