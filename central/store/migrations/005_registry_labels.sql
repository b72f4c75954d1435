-- Model registry, rollouts, uploaded evidence files and labels (issue 7, docs/retraining.md).

CREATE TABLE model_versions (
    id {id},
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    hazard TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    manifest TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    registered_by TEXT NOT NULL,
    registered_at DOUBLE PRECISION NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    data {blob} NOT NULL,
    UNIQUE (name, version)
);

CREATE TABLE rollouts (
    id {id},
    model_id BIGINT NOT NULL REFERENCES model_versions(id),
    state TEXT NOT NULL,
    canary_edge TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX rollouts_state ON rollouts(state);

CREATE TABLE rollout_edges (
    rollout_id BIGINT NOT NULL REFERENCES rollouts(id),
    edge_id TEXT NOT NULL,
    wave INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    running_version TEXT NOT NULL DEFAULT '',
    sends INTEGER NOT NULL DEFAULT 0,
    sent_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rollout_id, edge_id)
);

CREATE TABLE edge_models (
    edge_id TEXT NOT NULL,
    hazard TEXT NOT NULL,
    state TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    rollout_id TEXT,
    detail TEXT NOT NULL DEFAULT '',
    reported_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (edge_id, hazard)
);

CREATE TABLE evidence_files (
    edge_id TEXT NOT NULL,
    id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    hazard TEXT NOT NULL,
    alert_state TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL,
    captured_at DOUBLE PRECISION NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    data {blob} NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (edge_id, id)
);
CREATE INDEX evidence_files_alert ON evidence_files(edge_id, alert_id);
CREATE INDEX evidence_files_state ON evidence_files(alert_state, complete);

CREATE TABLE labels (
    id {id},
    incident_id BIGINT REFERENCES incidents(id),
    evidence_edge TEXT,
    evidence_id TEXT,
    verdict TEXT NOT NULL,
    hazard TEXT,
    false_alarm_kind TEXT,
    region TEXT,
    note TEXT NOT NULL DEFAULT '',
    labelled_by TEXT NOT NULL,
    labelled_at DOUBLE PRECISION NOT NULL,
    exported_at DOUBLE PRECISION
);
CREATE INDEX labels_incident ON labels(incident_id, id);
CREATE INDEX labels_time ON labels(labelled_at);
