"""The harness that runs hazardwatch for real on one machine, shared by the tests and the benches.

Each module is imported on its own, so using one piece needs only that piece's dependencies:
`mosquitto` (a private broker), `rtsp` with `rtsp_server` (a looping GStreamer RTSP server, run under the
system python), `service`, `central_proc` and `edge_proc` (`hazardwatch central|edge` as child
processes, with an MQTT publisher and watcher), `receiver` (a webhook receiver that checks signatures),
`databases` (throwaway SQLite or PostgreSQL), `media` (streaming-friendly H.264 clips and the shared data
folder), `degrade` (degraded frames), `toy_models` (small ONNX graphs), `browser` (headless Chromium)
and `dashboard_load` (a district of open incidents). The process handling is hazardwatch/procs.py's,
which the demo uses directly (it supervises its own children and needs no test helpers).
"""
