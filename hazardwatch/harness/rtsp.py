"""Drive rtsp_server.py (beside this module) from the venv: it must run under Debian's python3 (GstRtspServer)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from .server import LocalServer

SYSTEM_PYTHON = os.environ.get("HAZARDWATCH_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")


@cache
def gst_rtsp_unavailable_reason() -> str | None:
    """None when the system python can import GstRtspServer, else why not (used to skip tests clearly)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found (needed for GStreamer's RTSP server)"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        res = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} cannot probe GstRtspServer: {exc}"
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        return (
            f"{SYSTEM_PYTHON} cannot import GstRtspServer ({last}); "
            "run .ci/install-system.sh (python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-rtsp)"
        )
    return None


class RtspServer(LocalServer):
    """Looping loopback RTSP server for MP4 files; restart() keeps the port so clients can reconnect."""

    name = "rtsp-server"

    def __init__(
        self,
        mounts: Mapping[str, Path | str],
        port: int | None = None,
        *,
        start_timeout: float = 20.0,
    ) -> None:
        if not mounts:
            raise ValueError("at least one mount is needed")
        self.mounts = {("/" + k.lstrip("/")): Path(v) for k, v in mounts.items()}
        for path in self.mounts.values():
            if not path.is_file():
                raise FileNotFoundError(path)
        super().__init__(port, None, start_timeout)
        self.child.argv = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for name, path in self.mounts.items():
            self.child.argv += ["--mount", f"{name}={path.resolve()}"]

    def url(self, mount: str) -> str:
        """rtsp:// URL of a mount (with or without its leading slash)."""
        name = "/" + mount.lstrip("/")
        if name not in self.mounts:
            raise KeyError(f"no mount {name}; have {sorted(self.mounts)}")
        return f"rtsp://{self.host}:{self.port}{name}"

    def _wait_ready(self) -> None:
        self.child.wait_line("READY", self.start_timeout)

    def __repr__(self) -> str:
        return f"RtspServer(port={self.port}, mounts={sorted(self.mounts)}, running={self.running})"
