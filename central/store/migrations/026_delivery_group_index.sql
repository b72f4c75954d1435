-- A grouped notification's earlier messages (CAP references) are found by receiver and group key.
CREATE INDEX deliveries_group ON deliveries(receiver, group_key, id)
