-- hazardwatch central schema, version 1. Placeholders {id} and {blob} are filled per dialect.
-- Times are Unix seconds (DOUBLE PRECISION); JSON is stored as TEXT so both dialects share the SQL.

CREATE TABLE edges (
    edge_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    heartbeat TEXT
);

CREATE TABLE cameras (
    edge_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    bearing_deg DOUBLE PRECISION,
    fov_deg DOUBLE PRECISION,
    state TEXT NOT NULL DEFAULT 'unknown',
    reason TEXT NOT NULL DEFAULT '',
    since DOUBLE PRECISION,
    last_frame_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (edge_id, camera_id)
);

CREATE TABLE incidents (
    id {id},
    hazard TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    last_alert_at DOUBLE PRECISION NOT NULL,
    active_alerts INTEGER NOT NULL DEFAULT 0,
    score_max DOUBLE PRECISION NOT NULL DEFAULT 0,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    est_lat DOUBLE PRECISION,
    est_lon DOUBLE PRECISION,
    cameras TEXT NOT NULL DEFAULT '[]',
    camera_count INTEGER NOT NULL DEFAULT 0,
    acknowledged_by TEXT,
    acknowledged_at DOUBLE PRECISION,
    resolved_by TEXT,
    resolved_at DOUBLE PRECISION,
    note TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    notified_version INTEGER NOT NULL DEFAULT 0,
    notified_at DOUBLE PRECISION,
    notify_count INTEGER NOT NULL DEFAULT 0,
    suppressed_version INTEGER NOT NULL DEFAULT 0,
    previous_id BIGINT
);
CREATE INDEX incidents_open ON incidents(hazard, state, last_alert_at);
CREATE INDEX incidents_updated ON incidents(updated_at);

CREATE TABLE alert_events (
    id {id},
    edge_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    alert_id TEXT NOT NULL,
    state TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    hazard TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    boxes TEXT NOT NULL,
    zone TEXT,
    first_frame_at DOUBLE PRECISION NOT NULL,
    last_frame_at DOUBLE PRECISION NOT NULL,
    model TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    incident_id BIGINT NOT NULL REFERENCES incidents(id),
    evidence_id TEXT,
    UNIQUE (edge_id, alert_id, seq)
);
CREATE INDEX alert_events_incident ON alert_events(incident_id, id);
CREATE INDEX alert_events_alert ON alert_events(edge_id, alert_id);

CREATE TABLE incident_alerts (
    incident_id BIGINT NOT NULL REFERENCES incidents(id),
    edge_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    active INTEGER NOT NULL,
    boxes TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    last_at DOUBLE PRECISION NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    bearing_deg DOUBLE PRECISION,
    fov_deg DOUBLE PRECISION,
    PRIMARY KEY (edge_id, alert_id)
);
CREATE INDEX incident_alerts_incident ON incident_alerts(incident_id);

CREATE TABLE evidence (
    id TEXT PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents(id),
    content_type TEXT NOT NULL,
    data {blob} NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE incident_events (
    id {id},
    incident_id BIGINT NOT NULL REFERENCES incidents(id),
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_events_incident ON incident_events(incident_id, id);

CREATE TABLE silences (
    id {id},
    camera_id TEXT,
    edge_id TEXT,
    hazard TEXT,
    area TEXT,
    starts_at DOUBLE PRECISION NOT NULL,
    ends_at DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expired_by TEXT
);

CREATE TABLE deliveries (
    id {id},
    receiver TEXT NOT NULL,
    incident_id BIGINT NOT NULL REFERENCES incidents(id),
    idempotency_key TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION,
    last_error TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION,
    UNIQUE (receiver, idempotency_key)
);
CREATE INDEX deliveries_pending ON deliveries(state, next_attempt_at);
CREATE INDEX deliveries_order ON deliveries(receiver, incident_id, id);

CREATE TABLE rejected_messages (
    id {id},
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
)
