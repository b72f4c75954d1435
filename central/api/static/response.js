// Incident response blocks of the dashboard (issue 16): a hazard seen again after its incident was
// closed, false-alarm suppressions (visible, time-bound, liftable).
import { duration, el, time } from "./fmt.js";
import { getLang, t } from "./i18n.js";

export const SUPPRESS_HOURS = [1, 2, 6, 24, 0];

const pct = (v) => `${Math.round(Number(v) * 100)}%`;

/** "x 45–55%, y 40–50% of the frame" */
export function regionText(r) {
  return `x ${pct(r.x1)}–${pct(r.x2)}, y ${pct(r.y1)}–${pct(r.y2)}`;
}

/** Why this incident exists although an operator closed its predecessor; null for a plain incident. */
export function againLine(v, select) {
  const opened = (v.timeline || []).find((e) => e.kind === "opened");
  const reason = opened?.detail?.reason;
  if (!v.previous_id || !reason) return null;
  return el("p.again-line", { dataset: { reason } },
    t("again.line", { id: v.previous_id, reason: t(`again.${reason}`) }), " ",
    el("a", { href: "#", onclick: (e) => { e.preventDefault(); select(v.previous_id); } }, `#${v.previous_id}`));
}

/** On a closed incident: where the still-seen hazard went. */
export function successorLines(v, select) {
  return (v.successor_ids || []).map((id) => el("p.again-line.successor", { dataset: { successor: id } },
    el("a", { href: "#", onclick: (e) => { e.preventDefault(); select(id); } }, t("again.successor", { id }))));
}

function supText(s, cameraName, now) {
  const camera = cameraName(`${s.edge_id}/${s.camera_id}`);
  if (s.active) {
    return t("sup.line", { camera, region: regionText(s.region), until: time(s.ends_at, "short"),
      left: duration(s.ends_at - now), n: s.quiet_count });
  }
  const at = s.ended_at ?? s.ends_at;
  return t("sup.ended", { camera, region: regionText(s.region), at: time(at, "short"),
    why: s.end_reason || t("silences.expired") });
}

/** The detail's suppression block: every suppression the false alarm made, with Lift for operators. */
export function suppressionsBlock(v, { canAct, cameraName, onLift, settings }) {
  if (v.state !== "false_alarm" && !(v.suppressions || []).length) return null;
  const now = Date.now() / 1000;
  const items = v.suppressions || [];
  const rows = items.map((s) => el(`li.sup${s.active ? ".active" : ".ended"}`, { dataset: { id: s.id } },
    el("span", {}, supText(s, cameraName, now)),
    canAct && s.active ? el("button.btn.small.ghost", { type: "button", dataset: { action: "lift" },
      onclick: () => onLift(s.id) }, t("sup.lift")) : null));
  return el("div.suppressions", {},
    el("h3", {}, t("sup.title")),
    items.length ? el("ul.sup-list", {}, rows) : el("p.empty", {}, t("sup.none")),
    settings ? el("p.muted.sup-rule", {}, t("sup.breaks", { margin: settings.break_score_margin.toFixed(2),
      factor: settings.break_area_factor })) : null);
}

/** The false-alarm duration chooser shown next to the action buttons. */
export function suppressSelect(defaultS) {
  const sel = el("select.suppress", { "aria-label": t("sup.duration"), title: t("sup.duration") },
    SUPPRESS_HOURS.map((h) => el("option", { value: h * 3600 }, h ? t("sup.hours", { n: h }) : t("sup.for_none"))));
  sel.value = String(SUPPRESS_HOURS.includes(defaultS / 3600) ? defaultS : 7200);
  return el("label.suppress-choice", {}, el("span", {}, t("sup.duration")), sel);
}

/** Rows of the suppressions table on the Silences tab. */
export function suppressionRows(items, { cameraName, canAct, onLift, select }) {
  const now = Date.now() / 1000;
  return items.map((s) => el("tr", { dataset: { id: s.id, active: s.active ? "1" : "0" } },
    el("td", {}, String(s.id)),
    el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); select(s.incident_id); } }, `#${s.incident_id}`)),
    el("td", {}, `${cameraName(`${s.edge_id}/${s.camera_id}`)} · ${t(`hazard.${s.hazard}`)}`),
    el("td", {}, regionText(s.region)),
    el("td", {}, s.active ? [time(s.ends_at, "short"), " · ", duration(s.ends_at - now)] : time(s.ended_at ?? s.ends_at, "short")),
    el("td", {}, String(s.quiet_count)),
    el("td", {}, s.created_by),
    el("td", {}, canAct && s.active ? el("button.btn.small.ghost", { type: "button", dataset: { action: "lift" },
      onclick: () => onLift(s.id) }, t("sup.lift")) : null)));
}

// -- severity with its reasons, one confidence (issue 16.2, 16.3) ----------------------------------------
const signed = (d) => (d > 0 ? `+${d}` : d < 0 ? `−${-d}` : "");

function reasonText(r, hazard) {
  const vars = { ...r, delta: signed(r.delta), hazard: t(`hazard.${hazard}`), level: t(`severity.${r.level}`),
    importance: t(`imp.${r.importance}`), watch: t(`watch.${r.level}`),
    label: (getLang() === "zh" && r.label_zh) || r.label };
  return t(`sev.${r.code}`, vars);
}

/** "Why Extreme": the base and every step, as the server computed them. */
export function severityBlock(v) {
  const reasons = v.severity_reasons || [];
  if (!reasons.length) return null;
  return el("div.sev-why", {},
    el("h3", {}, t("sev.why", { severity: t(`severity.${v.severity}`) })),
    el("ul.reasons", {}, reasons.map((r) => el("li", { dataset: { code: r.code } }, reasonText(r, v.hazard)))));
}

/** The one confidence the officer sees, and what it means. */
export function confidenceText(value) {
  if (value === null || value === undefined) return t("none");
  return `${Math.round(Number(value) * 100)}%`;
}

/** What the confidence means, as nodes: each model not calibrated is named in a chip of its own, so a
 * short name (a test's "m") reads as a name and not as words cut off at the panel's edge. */
export function confidenceMeaning(v, calibratedModels) {
  const models = [...new Set((v.evidence || []).map((e) => (e.model || "").split("@")[0]).filter(Boolean))];
  const calibrated = models.length > 0 && models.every((m) => calibratedModels.includes(m));
  if (calibrated) return [t("conf.calibrated")];
  if (!models.length) return [t("conf.uncalibrated_any")];
  return [t("conf.uncalibrated"), ...models.flatMap((m) => [" ", el("span.model.model-name", {}, m)])];
}

/** Raw model scores for experts: per camera the vote score, per snapshot the per-frame box scores. */
export function rawScoresBlock(v, cameraName) {
  const rows = [];
  for (const c of v.cameras || []) {
    rows.push(el("li", {}, t("raw.camera", { camera: c.name || `${c.edge_id}/${c.camera_id}`,
      vote: c.vote_score !== undefined && c.vote_score !== null ? Number(c.vote_score).toFixed(2) : t("none") })));
  }
  for (const e of v.evidence || []) {
    const boxes = (e.boxes || []).map((b) => Number(b.score).toFixed(2)).join(", ") || t("none");
    rows.push(el("li", {}, t("raw.snapshot", { camera: cameraName(e.camera), at: time(e.at, "clock"),
      model: e.model || "", vote: e.vote_score !== undefined && e.vote_score !== null ? Number(e.vote_score).toFixed(2) : t("none"), boxes })));
  }
  return el("details.raw-scores", {}, el("summary", {}, t("raw.title")), el("p.muted", {}, t("raw.explain")), el("ul", {}, rows));
}

// -- procedure and contacts (issue 16.4) -----------------------------------------------------------------
const zh = () => getLang() === "zh";

/** The checklist with who ticked what and when, and whom to call. */
export function procedureBlock(v, { canAct, onTick }) {
  const p = v.procedure;
  if (!p) return null;
  const steps = p.steps.map((s) => {
    const box = el("input", { type: "checkbox", dataset: { index: s.index }, disabled: !canAct,
      "aria-label": (zh() && s.text_zh) || s.text });
    box.checked = s.done;
    box.addEventListener("change", () => onTick(p.id, s.index, box.checked));
    return el(`li.step${s.done ? ".done" : ""}`, { dataset: { index: s.index } },
      el("label", {}, box, el("span.text", {}, (zh() && s.text_zh) || s.text)),
      s.by ? el("span.muted.tick", {}, t(s.done ? "proc.ticked" : "proc.unticked", { by: s.by, at: time(s.at, "short") })) : null);
  });
  const contacts = p.contacts.map((c) => el("li.contact", { dataset: { id: c.id } },
    el("strong", {}, (zh() && c.name_zh) || c.name), " ",
    c.phone ? el("a", { href: `tel:${c.phone.replace(/[^+\d]/g, "")}` }, c.phone) : el("span.muted", {}, t("proc.no_phone")),
    c.note ? el("span.muted", {}, ` · ${c.note}`) : null));
  return el("div.procedure", { dataset: { id: p.id } },
    el("h3", {}, t("proc.title")),
    el("p.proc-title", {}, (zh() && p.title_zh) || p.title, " ", el("span.muted", {}, t("proc.progress", { done: p.done, n: p.steps.length }))),
    el("ol.steps", {}, steps),
    contacts.length ? el("h3", {}, t("proc.contacts")) : null,
    contacts.length ? el("ul.contacts", {}, contacts) : null);
}

/** The inline confirmation that closing a severe or extreme incident needs. */
export function closeConfirm(v, action, { onConfirm, onCancel }) {
  const left = v.procedure ? v.procedure.steps.filter((s) => !s.done).length : 0;
  const n = v.procedure ? v.procedure.steps.length : 0;
  return el("div.close-confirm", { role: "alertdialog" },
    el("p", {}, t("close.ask", { severity: t(`severity.${v.severity}`), action: t(`action.${action}`) }),
      n ? ` ${t("close.left", { left, n })}` : "", ` ${t("close.note")}`),
    el("div.buttons", {},
      el("button.btn.danger", { type: "button", dataset: { confirm: action }, onclick: onConfirm }, t("close.yes", { action: t(`action.${action}`) })),
      el("button.btn.ghost", { type: "button", dataset: { confirm: "cancel" }, onclick: onCancel }, t("close.cancel"))));
}

// -- cameras that cannot see (issue 16.6) ----------------------------------------------------------------
/** "covered (1.00)", translated; offline; or "failing" for a degraded camera without a diagnosis. */
export function whyText(c) {
  const blind = c.blind || [];
  if (blind.length) {
    return blind.map((d) => (d === "offline" || d === "degraded" ? t(`diag.${d}`)
      : `${t(`diag.${d}`)}${c.diagnoses && c.diagnoses[d] !== undefined ? ` (${Number(c.diagnoses[d]).toFixed(2)})` : ""}`)).join("; ");
  }
  const info = Object.keys(c.diagnoses || {}).filter((d) => d === "night_ir" || d === "fog");
  if (info.length) return info.map((d) => t(`diag.${d}`)).join("; ");
  return "";
}

/** "smoke: learning its normal" for each hazard whose reference is not ready yet (its model then finds fewer
 * small plumes: docs/models.md); empty once every one is ready. */
export function normalText(c) {
  return Object.entries(c.normal || {}).filter(([, phase]) => phase !== "ready")
    .map(([hazard, phase]) => t(`normal.${phase}`, { hazard: t(`hazard.${hazard}`) })).join("; ");
}

export function isBlind(c) {
  return Boolean(c && ((c.blind && c.blind.length) || c.state === "offline"));
}

/** The strip above the incident list: which cameras cannot see, why and since when. */
export function blindStrip(cameras, { onClick }) {
  const blind = cameras.filter(isBlind);
  if (!blind.length) return null;
  return [el("strong", {}, t("blind.title")), " ", ...blind.map((c) => el("button.blind-cam", { type: "button",
    dataset: { key: `${c.edge_id}/${c.camera_id}` }, onclick: onClick },
  t("blind.item", { camera: c.name || c.camera_id, why: whyText(c) || t("diag.offline"),
    since: c.since ? time(c.since, "short") : t("none") })))];
}
