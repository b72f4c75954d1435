-- Weather warnings (CAP) and the raised watch they put on cameras (central/warnings/).
-- weather_warnings: one row per CAP message (sender, identifier); state follows the CAP lifecycle:
--   active, replaced (by an Update), cancelled (by a Cancel), expired, ignored (no effect, with reason).
-- weather_watch: the target risk level per camera and hazard, and what was last sent to its edge.
-- weather_events: every change and every rejected document, for the API and audits.

CREATE TABLE weather_warnings (
    id {id},
    sender TEXT NOT NULL,
    identifier TEXT NOT NULL,
    sent DOUBLE PRECISION NOT NULL,
    msg_type TEXT NOT NULL,
    status TEXT NOT NULL,
    event TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL DEFAULT '',
    headline TEXT NOT NULL DEFAULT '',
    effective DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    infos TEXT NOT NULL,
    refs TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    replaced_by BIGINT,
    source TEXT NOT NULL,
    deviations TEXT NOT NULL DEFAULT '[]',
    received_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (sender, identifier)
);
CREATE INDEX weather_warnings_state ON weather_warnings(state, expires);
CREATE INDEX weather_warnings_updated ON weather_warnings(updated_at);

CREATE TABLE weather_watch (
    edge_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    hazard TEXT NOT NULL,
    level TEXT NOT NULL,
    until DOUBLE PRECISION,
    reason TEXT NOT NULL DEFAULT '',
    warnings TEXT NOT NULL DEFAULT '[]',
    changed_at DOUBLE PRECISION NOT NULL,
    sent_level TEXT,
    sent_until DOUBLE PRECISION,
    sent_at DOUBLE PRECISION,
    command_id TEXT,
    PRIMARY KEY (edge_id, camera_id, hazard)
);

CREATE TABLE weather_events (
    id {id},
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    warning_id BIGINT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX weather_events_at ON weather_events(at)
