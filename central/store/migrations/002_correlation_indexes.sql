-- Correlation looks up candidate incidents by camera and by position instead of scanning every open
-- incident of a hazard (bench/central_ingest.py: from 180 to well over 1,000 alerts/s on SQLite).
CREATE INDEX incident_alerts_camera ON incident_alerts(edge_id, camera_id, last_at);
CREATE INDEX incident_alerts_position ON incident_alerts(lat, lon)
