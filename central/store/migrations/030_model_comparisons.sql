-- A registered candidate's comparison with the running model on the labelled set (`models compare --json`),
-- shown on the dashboard's models page before a rollout (docs/retraining.md). Null until uploaded.
ALTER TABLE model_versions ADD COLUMN comparison TEXT;
ALTER TABLE model_versions ADD COLUMN compared_by TEXT;
ALTER TABLE model_versions ADD COLUMN compared_at DOUBLE PRECISION
