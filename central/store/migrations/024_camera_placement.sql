-- What the edge's camera config says of where a camera stands and looks, from its camera_status, so the
-- map shows every camera before it alerts and an incident can say how far along the view it probably is.
ALTER TABLE cameras ADD COLUMN height_m DOUBLE PRECISION;
ALTER TABLE cameras ADD COLUMN tilt_deg DOUBLE PRECISION;
ALTER TABLE cameras ADD COLUMN range_near_m DOUBLE PRECISION;
ALTER TABLE cameras ADD COLUMN range_far_m DOUBLE PRECISION
