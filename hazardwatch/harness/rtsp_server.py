#!/usr/bin/python3
"""Loopback RTSP server for tests: serves H.264 MP4 files in an endless loop without re-encoding.

Run it with Debian's own interpreter (it needs python3-gi and GstRtspServer, which the venv lacks):

    /usr/bin/python3 hazardwatch/harness/rtsp_server.py --port 8554 --mount /cam1=clip.mp4 [--mount ...]

Why this design: GstRtspServer has no "loop" option, and seeking a pipeline the RTSP media owns fights
with the server's own seeks and rewinds RTP timestamps.  Instead each file's H.264 access units are read
once into memory (qtdemux ! h264parse, no decoding) and an ``appsrc`` in the served pipeline replays
them forever with ever-increasing timestamps, so clients see one continuous live-like stream.
SPS/PPS are repeated with every key frame, so a client can join at any key frame.

Prints ``READY port=N`` on stdout once serving; exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


@dataclass
class Clip:
    """One file's access units in decode order, held in memory so every loop costs no disk or parsing."""

    caps: Gst.Caps
    units: list[tuple[bytes, int, int, bool]]  # (data, pts ns, duration ns, is key frame)
    duration: int  # ns; the offset added on every loop


def load_clip(path: Path) -> Clip:
    """Demux and parse (never decode) an MP4's H.264 track into byte-stream access units."""
    pipeline = Gst.parse_launch(
        "filesrc name=file ! qtdemux name=demux demux.video_0 ! queue ! "
        "h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! "
        "appsink name=sink sync=false emit-signals=false max-buffers=0"
    )
    pipeline.get_by_name("file").set_property("location", str(path))
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[tuple[bytes, int, int, bool]] = []
    caps: Gst.Caps | None = None
    bus = pipeline.get_bus()
    try:
        while True:
            sample = sink.emit("try-pull-sample", Gst.SECOND // 5)
            if sample is None:
                msg = bus.pop_filtered(Gst.MessageType.ERROR)
                if msg is not None:
                    err, dbg = msg.parse_error()
                    raise RuntimeError(f"{path}: {err.message} ({dbg})")
                if sink.get_property("eos"):
                    break
                continue
            caps = sample.get_caps()
            buf = sample.get_buffer()
            pts = buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else buf.dts
            key = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
            units.append((buf.extract_dup(0, buf.get_size()), pts, buf.duration, key))
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not units or caps is None:
        raise RuntimeError(f"{path}: no H.264 video track found")
    if not units[0][3]:
        raise RuntimeError(f"{path}: the first frame is not a key frame; re-encode with hazardwatch/harness/media.py")
    first = units[0][1]
    fixed: list[tuple[bytes, int, int, bool]] = []
    for i, (data, pts, dur, key) in enumerate(units):
        if dur == Gst.CLOCK_TIME_NONE or dur <= 0:
            dur = (units[i + 1][1] - pts) if i + 1 < len(units) else (fixed[-1][2] if fixed else Gst.SECOND // 10)
        fixed.append((data, pts - first, dur, key))
    last = fixed[-1]
    return Clip(caps=caps, units=fixed, duration=last[1] + last[2])


class Feeder:
    """Pushes one clip into one media's appsrc, forever, with timestamps that keep rising across loops."""

    def __init__(self, clip: Clip, appsrc: Gst.Element) -> None:
        self.clip = clip
        self.index = 0
        self.offset = 0
        appsrc.set_property("caps", clip.caps)
        appsrc.set_property("format", Gst.Format.TIME)
        appsrc.set_property("is-live", False)
        appsrc.set_property("max-buffers", 20)
        appsrc.connect("need-data", self.on_need_data)

    def on_need_data(self, src: Gst.Element, _length: int) -> None:
        """Push the next access unit; wrap to the first one (a key frame) after the last."""
        data, pts, dur, key = self.clip.units[self.index]
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = self.offset + pts
        buf.dts = buf.pts
        buf.duration = dur
        if not key:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        self.index += 1
        if self.index >= len(self.clip.units):
            self.index = 0
            self.offset += self.clip.duration
        src.emit("push-buffer", buf)


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
    """Shared media factory: every client of a mount watches the same running pipeline."""

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.set_shared(True)
        self.set_launch("( appsrc name=src ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        """Attach a fresh feeder each time the shared pipeline is (re)built."""
        appsrc = media.get_element().get_child_by_name("src")
        media.feeder = Feeder(self.clip, appsrc)  # keep it alive as long as the media


def parse_mount(text: str) -> tuple[str, Path]:
    """Parse ``/name=/path/file.mp4``."""
    name, sep, path = text.partition("=")
    if not sep or not name.startswith("/") or not path:
        raise argparse.ArgumentTypeError(f"expected /name=/path/file.mp4, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    """Start the server, print READY, run until SIGTERM/SIGINT."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8554, help="TCP port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--mount", type=parse_mount, action="append", required=True, help="/name=/path/file.mp4")
    args = ap.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for name, path in args.mount:
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        mounts.add_factory(name, LoopingFactory(load_clip(path)))

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"error: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 3
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *_: (loop.quit(), GLib.SOURCE_REMOVE)[1])
    print(f"READY port={server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
