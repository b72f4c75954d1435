// The labelling view: the queue from GET /api/v1/labelling/queue, one item at a time with its snapshots,
// clip and regions; the operator's verdict, false-alarm kind and corrected region become a label
// (POST /api/v1/incidents/{id}/labels, or POST /api/v1/labels for a quiet frame), i.e. training data.
// Built for speed: every decision has a key, and the next item's data is fetched while this one is shown.
import { api } from "./api.js";
import { el, icon, svg, time } from "./fmt.js";
import { filesBlock, mediaFrame } from "./evidence.js";
import { t } from "./i18n.js";

export const KINDS = ["cloud", "fog", "haze", "dust", "steam", "vehicle", "lights", "glare", "reflection", "animal", "other"];
const KIND_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "o"]; // KINDS[i] <- KIND_KEYS[i]
const VERDICTS = [["hazard", "y"], ["false_alarm", "n"], ["ambiguous", "a"]];
const MIN_REGION = 0.01; // a click without a drag does not replace the region

const clamp = (v) => Math.min(1, Math.max(0, v));
const itemKey = (it) => (it.incident_id ? `i${it.incident_id}` : `f${it.evidence.edge_id}/${it.evidence.id}`);

/** The pictures of one queue item: the alert snapshots (with boxes), then the edge's full snapshots. */
function pictures(data) {
  const shots = (data.view?.evidence || []).map((e) => ({ src: `/api/v1/evidence/${encodeURIComponent(e.id)}.jpg`, boxes: e.boxes || [], at: e.at }));
  for (const f of data.files) {
    if (f.kind === "snapshot") shots.push({ src: f.url, at: f.captured_at, boxes: ((f.meta || {}).boxes || []).map(([x1, y1, x2, y2, score]) => ({ x1, y1, x2, y2, score })) });
  }
  return shots;
}

/** The change a verdict or false-alarm-kind key makes (the same keys here and in the incident detail), or null. */
export function choiceForKey(k) {
  const verdict = VERDICTS.find(([, key]) => key === k);
  if (verdict) return { verdict: verdict[0] };
  const kind = KIND_KEYS.indexOf(k.toLowerCase());
  return kind >= 0 ? { verdict: "false_alarm", kind: KINDS[kind] } : null;
}

/** A choice after a change: a verdict other than false alarm drops the kind. */
export function applyChoice(choice, change) {
  const next = { ...choice, ...change };
  if (change.verdict && change.verdict !== "false_alarm") next.kind = null;
  return next;
}

/** The verdict and kind buttons with their keys; `onSet(change)` on a click. */
export function choiceButtons(choice, onSet) {
  return [
    el("h3", {}, t("lab.verdict")),
    el("div.lab-verdicts", {}, VERDICTS.map(([v, k]) => el(`button.btn.lab-verdict${choice.verdict === v ? ".on" : ""}`,
      { type: "button", dataset: { verdict: v }, onclick: () => onSet({ verdict: v }) }, el("kbd", {}, k), ` ${t(`lab.verdict.${v}`)}`))),
    el("h3", {}, t("lab.kind")),
    el("div.lab-kinds", {}, KINDS.map((kind, i) => el(`button.btn.small.lab-kind${choice.kind === kind ? ".on" : ""}`,
      { type: "button", dataset: { kind }, onclick: () => onSet({ verdict: "false_alarm", kind }) }, el("kbd", {}, KIND_KEYS[i]), ` ${t(`lab.kind.${kind}`)}`))),
  ];
}

/** A saved label's body: verdict, kind for a false alarm, a region when drawn. */
export function labelBody(choice) {
  const body = { verdict: choice.verdict };
  if (choice.verdict === "false_alarm") body.false_alarm_kind = choice.kind;
  if (choice.region) body.region = choice.region;
  return body;
}

export const choiceReady = (c) => Boolean(c.verdict && (c.verdict !== "false_alarm" || c.kind));

export class LabellingView {
  constructor(root, { cameraName, canAct }) {
    this.root = root;
    this.cameraName = cameraName;
    this.canAct = canAct;
    this.items = [];
    this.index = 0;
    this.cache = new Map(); // item key -> Promise of {view, files}
    this.done = new Map(); // item key -> the label saved for it
    this.choice = null; // {verdict, kind, region, shot}
    this.data = null; // {view, files} of the item on screen; null while it loads
    this.msg = "";
    this.saving = false;
    this.active = false;
    document.addEventListener("keydown", (e) => this.onKey(e));
  }

  async open() {
    this.active = true;
    this.root.replaceChildren(el("p.empty", {}, t("detail.loading")));
    try {
      const q = await api("/labelling/queue?limit=100");
      this.items = q.items;
    } catch (err) {
      this.root.replaceChildren(el("p.error", {}, t("error", { detail: err.detail || err.message })));
      return;
    }
    this.index = 0;
    await this.show();
  }

  close() {
    this.active = false;
  }

  load(item) {
    const key = itemKey(item);
    if (!this.cache.has(key)) {
      const p = item.incident_id
        ? Promise.all([api(`/incidents/${item.incident_id}`), api(`/incidents/${item.incident_id}/labels`)])
          .then(([view, lab]) => ({ view, files: lab.evidence_files }))
        : Promise.resolve({ view: null, files: [item.evidence] });
      this.cache.set(key, p.catch((err) => {
        this.cache.delete(key);
        throw err;
      }));
    }
    return this.cache.get(key);
  }

  async show() {
    const item = this.items[this.index];
    if (!item) return this.renderEmpty();
    const key = itemKey(item);
    const saved = this.done.get(key);
    this.choice = { verdict: saved?.verdict || item.suggested?.verdict || null,
      kind: saved?.false_alarm_kind || item.suggested?.false_alarm_kind || null, region: saved?.region || null, shot: 0 };
    this.data = null; // keys wait for the pictures: a verdict is given on what was seen
    this.root.dataset.ready = "0";
    let data;
    try {
      data = await this.load(item);
    } catch (err) {
      this.root.replaceChildren(el("p.error", {}, t("error", { detail: err.detail || err.message })));
      return;
    }
    if (this.items[this.index] !== item) return; // the operator moved on while it loaded
    this.data = data;
    this.render();
    const next = this.items[this.index + 1];
    if (next) this.load(next).catch(() => {}); // prefetch: the next item opens at once
  }

  renderEmpty() {
    this.root.dataset.item = "";
    this.root.replaceChildren(el("div.lab-empty", {}, el("p", {}, t("lab.empty", { n: this.done.size })),
      el("button.btn", { type: "button", onclick: () => this.open() }, t("lab.reload"))));
  }

  render() {
    const item = this.items[this.index];
    const shots = pictures(this.data);
    const shot = shots[this.choice.shot] || null;
    const key = itemKey(item);
    this.root.dataset.item = key;
    this.root.dataset.ready = "1";
    const stage = shot ? this.stage(shot) : el("p.empty", {}, t("detail.no_evidence"));
    this.root.replaceChildren(
      el("div.lab-queue", {}, el("h3", {}, t("lab.queue", { left: this.items.length - this.done.size, done: this.done.size })),
        el("ol.lab-items", {}, this.items.map((it, i) => el(`li${i === this.index ? ".current" : ""}${this.done.has(itemKey(it)) ? ".done" : ""}`,
          { dataset: { key: itemKey(it) }, onclick: () => this.go(i) },
          it.hazard ? icon(it.hazard) : null,
          el("span", {}, it.incident_id ? `#${it.incident_id}` : t("lab.quiet")),
          el("span.muted", {}, t(`lab.reason.${it.reason}`)))))),
      el("div.lab-stage", {},
        el("div.lab-title", {}, item.hazard ? icon(item.hazard) : null,
          el("strong", {}, item.incident_id ? `${t(`hazard.${item.hazard}`)} #${item.incident_id}` : t("lab.quiet")),
          el("span.muted", {}, ` · ${t(`lab.reason.${item.reason}`)}`),
          item.score_max !== undefined ? el("span.muted", {}, ` · ${t("lab.score", { s: Number(item.score_max).toFixed(2) })}`) : null,
          el("span.muted", {}, ` · ${(item.cameras || [`${item.evidence.edge_id}/${item.evidence.camera_id}`]).map((c) => this.cameraName(c)).join(", ")}`)),
        stage,
        shots.length > 1 ? el("div.lab-thumbs", {}, shots.map((s, i) => el(`button.lab-thumb${i === this.choice.shot ? ".on" : ""}`,
          { type: "button", onclick: () => this.pick(i) }, el("img", { src: s.src, alt: "" })))) : null,
        el("details.lab-clip", { open: true }, el("summary", {}, t("detail.clips")), filesBlock(this.data.files.filter((f) => f.kind === "clip"), { cameraName: this.cameraName }))),
      this.panel(item));
  }

  /** The picture with the model's boxes and the operator's region, drawn by dragging. */
  stage(shot) {
    const frame = mediaFrame(el("img", { src: shot.src, alt: "", draggable: "false" }), shot.boxes);
    frame.classList.add("lab-frame");
    const r = this.choice.region;
    const layer = svg("svg", { class: "region-layer", viewBox: "0 0 1 1", preserveAspectRatio: "none" },
      r ? svg("rect", { class: "region", x: r[0], y: r[1], width: r[2] - r[0], height: r[3] - r[1], "vector-effect": "non-scaling-stroke" }) : null);
    frame.append(layer);
    let start = null;
    const at = (e) => {
      const b = frame.getBoundingClientRect();
      return [clamp((e.clientX - b.left) / b.width), clamp((e.clientY - b.top) / b.height)];
    };
    const draw = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
    frame.addEventListener("pointerdown", (e) => {
      start = at(e);
      frame.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    frame.addEventListener("pointermove", (e) => {
      if (!start) return;
      const [x1, y1, x2, y2] = draw(start, at(e));
      layer.replaceChildren(svg("rect", { class: "region drawing", x: x1, y: y1, width: x2 - x1, height: y2 - y1, "vector-effect": "non-scaling-stroke" }));
    });
    frame.addEventListener("pointerup", (e) => {
      if (!start) return;
      const box = draw(start, at(e));
      start = null;
      if (box[2] - box[0] >= MIN_REGION && box[3] - box[1] >= MIN_REGION) this.choice.region = box.map((v) => Math.round(v * 10000) / 10000);
      this.render();
    });
    return el("figure.lab-picture", {}, frame,
      el("figcaption", {}, `${time(shot.at)} · `, this.choice.region ? t("lab.region_set") : t("lab.region_hint")));
  }

  panel(item) {
    const c = this.choice;
    return el("div.lab-panel", {},
      ...choiceButtons(c, (change) => this.set(change)),
      el("div.buttons", {},
        el("button.btn.primary.lab-save", { type: "button", disabled: !this.canAct() || !this.ready(), onclick: () => this.save() }, el("kbd", {}, "Enter"), ` ${t("lab.save")}`),
        el("button.btn.ghost", { type: "button", onclick: () => this.go(this.index + 1) }, el("kbd", {}, "→"), ` ${t("lab.skip")}`),
        c.region ? el("button.btn.ghost", { type: "button", onclick: () => this.set({ region: null }) }, el("kbd", {}, "r"), ` ${t("lab.region_reset")}`) : null),
      el("p.action-msg.lab-msg", {}, this.msg || ""),
      el("p.muted.lab-keys", {}, t("lab.keys")),
      item.reason === "near_threshold" ? el("p.muted", {}, t("lab.near", { thr: item.threshold })) : null);
  }

  ready() {
    return choiceReady(this.choice);
  }

  set(change) {
    if (!this.data) return;
    this.choice = applyChoice(this.choice, change);
    this.msg = "";
    this.render();
  }

  pick(i) {
    if (!this.data) return;
    this.choice.shot = i;
    this.render();
  }

  go(i) {
    this.index = Math.max(0, Math.min(this.items.length, i));
    this.msg = "";
    this.show();
  }

  async save() {
    const item = this.items[this.index];
    if (!item || !this.data || !this.ready() || this.saving) {
      this.msg = t("lab.need");
      return this.render();
    }
    const body = labelBody(this.choice);
    if (!item.incident_id) body.evidence = { edge_id: item.evidence.edge_id, id: item.evidence.id };
    this.saving = true;
    try {
      const label = await api(item.incident_id ? `/incidents/${item.incident_id}/labels` : "/labels", { method: "POST", body });
      this.done.set(itemKey(item), label);
      this.msg = "";
      const next = this.items.findIndex((it, i) => i > this.index && !this.done.has(itemKey(it)));
      this.go(next < 0 ? this.items.length : next);
    } catch (err) {
      this.msg = t("error", { detail: err.detail || err.message });
      this.render();
    } finally {
      this.saving = false;
    }
  }

  onKey(e) {
    if (!this.active || e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
    const k = e.key;
    const change = choiceForKey(k);
    if (change) this.set(change);
    else if (k === "r") this.set({ region: null });
    else if (k === "Enter") this.save();
    else if (k === "ArrowRight") this.go(this.index + 1);
    else if (k === "ArrowLeft") this.go(this.index - 1);
    else if ((k === "ArrowDown" || k === "ArrowUp") && this.data) {
      this.pick((this.choice.shot + (k === "ArrowDown" ? 1 : -1) + 64) % Math.max(1, pictures(this.data).length));
    }
    else if (k === " ") {
      const video = this.root.querySelector("video");
      if (video) video.paused ? video.play() : video.pause();
    } else return;
    e.preventDefault();
  }
}
