"""Public weather warnings (CAP 1.2) raise the patrol rate of the cameras in the warned area (docs/weather.md)."""
