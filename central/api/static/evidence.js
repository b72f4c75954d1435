// Evidence in the incident detail: alert snapshots with their regions (enlarged on click; small regions
// also in a close-up beside the picture), and the
// clips and full-resolution snapshots the edge uploaded (GET /api/v1/incidents/{id}/labels).
import { evidenceSrc } from "./api.js";
import { el, svg, time } from "./fmt.js";
import { t } from "./i18n.js";

/** Boxes [{x1, y1, x2, y2, score}] in relative coordinates, drawn over a 0..1 square stretched onto
 * the media. The stretch is right only because the frame holding it has the media's own aspect ratio. */
export function boxOverlay(boxes) {
  return svg("svg", { class: "boxes", viewBox: "0 0 1 1", preserveAspectRatio: "none" },
    (boxes || []).map((b) => svg("rect", {
      x: b.x1, y: b.y1, width: Math.max(0.002, b.x2 - b.x1), height: Math.max(0.002, b.y2 - b.y1),
      "vector-effect": "non-scaling-stroke", class: "box", dataset: { score: b.score },
    })));
}

/** A frame that takes the aspect ratio of the image or video it holds, once that is known: the CSS sizes
 * it to fit its box (enlarged: the screen) and the media and the overlay fill it exactly, so a box drawn
 * at relative coordinates lands on the same pixels of the picture at any size, for 4:3 and 16:9 alike.
 * `size` ({width, height}, as the edge recorded it) gives the camera's aspect before the media loads. */
export function mediaFrame(media, boxes, size = {}) {
  const frame = el("div.frame", {}, media, boxOverlay(boxes));
  const setRatio = (w, h) => {
    if (w > 0 && h > 0) {
      frame.style.setProperty("--ar", String(w / h));
      frame.dataset.ratio = `${w}x${h}`;
    }
  };
  setRatio(Number(size.width), Number(size.height));
  if (media.tagName === "VIDEO") media.addEventListener("loadedmetadata", () => setRatio(media.videoWidth, media.videoHeight));
  else media.addEventListener("load", () => setRatio(media.naturalWidth, media.naturalHeight));
  return frame;
}

// A close-up is shown where the alert's regions together span less than this share of the picture's
// width and height (so it enlarges at least 2.4x): a plume far away is a few pixels of a thumbnail, and
// the officer must judge it.
const CLOSEUP_BELOW = 0.14;

/** The square (relative to the picture, so it keeps the picture's aspect) a close-up shows: the boxes with
 * twice their size around them, between 15 % and half of the picture; null when the boxes are large
 * enough to judge on the picture itself. */
export function closeupRegion(boxes) {
  if (!boxes || !boxes.length) return null;
  const x1 = Math.min(...boxes.map((b) => b.x1)), x2 = Math.max(...boxes.map((b) => b.x2));
  const y1 = Math.min(...boxes.map((b) => b.y1)), y2 = Math.max(...boxes.map((b) => b.y2));
  const span = Math.max(x2 - x1, y2 - y1);
  if (!(span < CLOSEUP_BELOW)) return null;
  const side = Math.min(0.5, Math.max(0.15, 3 * span));
  const start = (lo, hi) => Math.min(1 - side, Math.max(0, (lo + hi) / 2 - side / 2));
  return { x: start(x1, x2), y: start(y1, y2), side };
}

/** The picture again, enlarged onto `region` with the boxes where they fall in it. The image keeps the
 * picture's aspect (its box is the frame's, scaled by 1/side), so its pixels are not stretched. */
function closeup(src, alt, boxes, region) {
  const { x, y, side } = region;
  const img = el("img.closeup-img", { src, alt, loading: "lazy" });
  Object.assign(img.style, { position: "absolute", maxWidth: "none", width: `${100 / side}%`, height: `${100 / side}%`,
    left: `${(-100 * x) / side}%`, top: `${(-100 * y) / side}%` });
  const inside = boxes.map((b) => ({ ...b, x1: (b.x1 - x) / side, x2: (b.x2 - x) / side, y1: (b.y1 - y) / side, y2: (b.y2 - y) / side }));
  return el("div.closeup", { dataset: { side: side.toFixed(3) } }, mediaFrame(img, inside),
    el("span.closeup-label", {}, t("detail.closeup", { x: (1 / side).toFixed(1) })));
}

/** A snapshot with its boxes and, where they are small, a close-up of them beside it. */
function snapPicture(src, alt, boxes, size) {
  const frame = mediaFrame(el("img", { src, alt, loading: "lazy" }), boxes, size);
  const region = closeupRegion(boxes);
  return region ? el("div.pair", {}, frame, closeup(src, alt, boxes, region)) : frame;
}

function zoomable(fig) {
  fig.tabIndex = 0;
  fig.addEventListener("click", () => fig.classList.toggle("zoomed"));
  fig.addEventListener("keydown", (e) => e.key === "Enter" && fig.classList.toggle("zoomed")); // Escape: app.js
  return fig;
}

/** The snapshots sent with the alerts, newest first, each with its boxes; click to enlarge. */
export function snapshotsBlock(v, { cameraName, confidenceText }) {
  if (!v.evidence.length) return el("p.empty", {}, t("detail.no_evidence"));
  return el("div.evidence", {}, v.evidence.map((e) => zoomable(el("figure.snap", { dataset: { id: e.id } },
    snapPicture(evidenceSrc(e), `${e.camera} ${time(e.at)}`, e.boxes || []),
    el("figcaption", {}, `${cameraName(e.camera)} · ${time(e.at, "clock")} · ${t("detail.snap_confidence", { c: confidenceText(e.confidence ?? e.vote_score) })}`)))));
}

const asBoxes = (rows) => (rows || []).map(([x1, y1, x2, y2, score]) => ({ x1, y1, x2, y2, score }));

/** The boxes of the clip frame on screen: the edge records each look's own regions (meta.frame_boxes,
 * one list per frame, null where it did not learn them); clips from older edges have only the alert's
 * regions (meta.boxes), drawn over every frame. */
function clipBoxesAt(meta, index) {
  const perFrame = meta.frame_boxes;
  if (Array.isArray(perFrame) && perFrame.length) return asBoxes(perFrame[Math.min(index, perFrame.length - 1)] || []);
  return asBoxes(meta.boxes);
}

/** One uploaded clip: an MP4 plays in a <video> with the boxes of the frame on screen; a JPEG tar (an
 * edge without an MP4 encoder) is offered as a download. */
function clipFigure(f, cameraName) {
  const meta = f.meta || {};
  const caption = t("clip.caption", { camera: cameraName(`${f.edge_id}/${f.camera_id}`), from: time(meta.first_at, "clock"),
    to: time(meta.last_at, "clock"), n: meta.frames ?? "?", before: meta.before ?? "?", after: meta.after ?? "?" });
  if (f.content_type !== "video/mp4") {
    return el("figure.clip", { dataset: { id: f.id } }, el("a", { href: f.url, download: `${f.id}.tar` }, t("clip.download_tar")),
      el("figcaption", {}, caption));
  }
  // The player's own controls sit below the picture: the browser's would cover its lower part, where a
  // fire or standing water usually is, and make the clip look framed otherwise than its snapshots.
  const video = el("video", { src: f.url, muted: true, preload: "metadata", playsinline: true, title: t("detail.clip") });
  video.muted = true;
  const frame = mediaFrame(video, clipBoxesAt(meta, 0), meta);
  const n = Math.max(1, Number(meta.frames) || 1);
  const alertAt = Number(meta.before) || 0;
  const button = el("button.clip-play", { type: "button" });
  const slider = el("input.clip-seek", { type: "range", min: 0, max: n - 1, step: 1, value: 0, "aria-label": t("detail.clip") });
  const where = el("span.clip-at", {});
  const indexNow = () => (video.duration > 0 ? Math.max(0, Math.min(n - 1, Math.floor((video.currentTime / video.duration) * n))) : 0);
  const seekTo = (k) => { if (video.duration > 0) video.currentTime = ((k + 0.5) / n) * video.duration; };
  const redraw = () => {
    const index = indexNow();
    slider.value = String(index);
    where.textContent = t(index === alertAt && alertAt > 0 ? "clip.frame_alert" : "clip.frame", { k: index + 1, n });
    button.textContent = video.paused ? `▶ ${t("clip.play")}` : `❚❚ ${t("clip.pause")}`;
    if (frame.dataset.index === String(index)) return;
    frame.dataset.index = String(index);
    frame.querySelector("svg.boxes").replaceWith(boxOverlay(clipBoxesAt(meta, index)));
  };
  for (const e of ["timeupdate", "seeked", "play", "pause", "ended"]) video.addEventListener(e, redraw);
  // Paused, the clip shows the frame the alert was raised on (its first frames are from before, with
  // nothing to see yet, and read as another picture than the snapshots); Play still starts at the beginning.
  // A flag, not a comparison of positions: after a seek the browser may report the decoded frame's time.
  let onAlertFrame = false; // put on the alert's frame by us and not moved by hand since
  video.addEventListener("loadedmetadata", () => {
    if (alertAt > 0 && alertAt < n && video.duration > 0) {
      seekTo(alertAt);
      onAlertFrame = true;
    }
    redraw();
  }, { once: true });
  video.addEventListener("play", () => {
    if (onAlertFrame) video.currentTime = 0;
    onAlertFrame = false;
  });
  const toggle = () => (video.paused ? video.play().catch(() => {}) : video.pause());
  button.addEventListener("click", toggle);
  video.addEventListener("click", toggle);
  slider.addEventListener("input", () => { onAlertFrame = false; video.pause(); seekTo(Number(slider.value)); });
  redraw();
  return el("figure.clip", { dataset: { id: f.id } }, frame, el("div.clip-controls", {}, button, slider, where),
    el("figcaption", {}, caption));
}

/** The edge's uploads for this incident: clips first, then the full-resolution snapshots taken when an
 * alert began (before) and ended (after), each with the alert's boxes. */
export function filesBlock(files, { cameraName }) {
  if (!files) return el("p.empty", {}, t("detail.loading"));
  if (!files.length) return el("p.empty.no-files", {}, t("clip.none"));
  const clips = files.filter((f) => f.kind === "clip");
  const snaps = files.filter((f) => f.kind === "snapshot");
  return el("div.files", {},
    clips.map((f) => clipFigure(f, cameraName)),
    el("div.evidence.full-snaps", {}, snaps.map((f) => zoomable(el("figure.snap", { dataset: { id: f.id, state: f.alert_state } },
      snapPicture(f.url, f.id, asBoxes((f.meta || {}).boxes), f.meta || {}),
      el("figcaption", {}, `${t(`clip.state.${f.alert_state}`)} · ${cameraName(`${f.edge_id}/${f.camera_id}`)} · ${time(f.captured_at, "clock")}`))))));
}
