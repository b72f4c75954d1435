-- Grouped notifications (a receiver with group_by, docs/webhook.md): each incident change for such a
-- receiver waits in group_items until its group is flushed into one delivery. Those deliveries carry the
-- group's key, and a group's deliveries form one chain (in order), as an incident's do otherwise.
-- An incident stays in the group it was first put in for a receiver, so its changes stay in order.
CREATE TABLE delivery_groups (
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    labels TEXT NOT NULL,
    flushes INTEGER NOT NULL DEFAULT 0,
    last_flush_at DOUBLE PRECISION,
    PRIMARY KEY (receiver, group_key)
);
CREATE TABLE group_items (
    id {id},
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    incident_id BIGINT NOT NULL REFERENCES incidents(id),
    idempotency_key TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    delivery_id BIGINT,
    UNIQUE (receiver, idempotency_key)
);
CREATE INDEX group_items_waiting ON group_items(receiver, group_key, delivery_id);
CREATE INDEX group_items_incident ON group_items(receiver, incident_id, id);
ALTER TABLE deliveries ADD COLUMN group_key TEXT
