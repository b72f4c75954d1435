"""Alert evidence on the edge: a bounded ring buffer of looked-at frames per camera, clips and
full-resolution snapshots saved on alert start and end, an on-disk index that survives restarts,
resumable upload to central, and a byte-bounded retention policy.

Why these choices (docs/retraining.md):
- the buffer holds the frames the patrol already decoded (no extra decoding), downscaled, bounded by
  a frame count and a byte budget per camera, so memory stays flat however many cameras a box has;
- a clip is MP4 when PyAV has an encoder (h264/libx264, then mpeg4) and an uncompressed tar of JPEGs
  otherwise: both are one file, so upload and retention treat them alike;
- the edge pushes evidence to central (PUT with Content-Range, HEAD tells how much central already
  has): an edge behind NAT cannot be fetched from, and a cut connection resumes where it stopped;
- retention never deletes what central does not have yet. Once central has a file it is only a cache
  here; central keeps evidence of every incident (it deletes nothing), so an open or labelled
  incident keeps its evidence until it is exported and beyond.

Modules: ring (the per-camera frame buffer), encode (MP4 or JPEG-tar clips), index (the SQLite
record of every file), store (snapshots, clips and retention), uploader (resumable push to central).
"""

from hazardwatch.edge.evidence.encode import encode_jpeg_tar, encode_mp4, pick_codec
from hazardwatch.edge.evidence.ring import FrameRing
from hazardwatch.edge.evidence.store import EvidenceStore
from hazardwatch.edge.evidence.uploader import EvidenceUploader

__all__ = ["EvidenceStore", "EvidenceUploader", "FrameRing", "encode_jpeg_tar", "encode_mp4", "pick_codec"]
