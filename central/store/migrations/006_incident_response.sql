-- Issue 16: the duty officer can trust the screen.
-- suppressions: what an operator's "false alarm" silences (one camera, hazard and image region, until
--   ends_at), how strong the judged detection was (a clearly stronger one breaks through), and how many
--   looks it kept quiet. ended_* record an early lift or a break-through.
-- incidents.severity_reasons: why the incident has its severity (JSON list, see central/incidents/severity.py).
-- incidents.confidence: the calibrated confidence shown to the officer (0..1).

CREATE TABLE suppressions (
    id {id},
    incident_id BIGINT NOT NULL REFERENCES incidents(id),
    edge_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    hazard TEXT NOT NULL,
    x1 DOUBLE PRECISION NOT NULL,
    y1 DOUBLE PRECISION NOT NULL,
    x2 DOUBLE PRECISION NOT NULL,
    y2 DOUBLE PRECISION NOT NULL,
    ref_score DOUBLE PRECISION NOT NULL,
    ref_area DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    ends_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION,
    ended_by TEXT,
    end_reason TEXT NOT NULL DEFAULT '',
    quiet_count INTEGER NOT NULL DEFAULT 0,
    last_quiet_at DOUBLE PRECISION
);
CREATE INDEX suppressions_camera ON suppressions(edge_id, camera_id, hazard, ends_at);
ALTER TABLE incidents ADD COLUMN severity_reasons TEXT NOT NULL DEFAULT '[]';
ALTER TABLE incidents ADD COLUMN confidence DOUBLE PRECISION
