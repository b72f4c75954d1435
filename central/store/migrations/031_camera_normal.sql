-- Issue 14: how far each camera has learnt its normal, per hazard whose model compares each look with it
-- (learning / warming / ready; JSON), from its status messages: a camera still learning finds fewer
-- small plumes, and a duty officer should know which ones do.
ALTER TABLE cameras ADD COLUMN normal TEXT NOT NULL DEFAULT '{}'
