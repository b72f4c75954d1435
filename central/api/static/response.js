// Incident response blocks of the dashboard (issue 16): a hazard seen again after its incident was
// closed, false-alarm suppressions (visible, time-bound, liftable).
import { duration, el, time } from "./fmt.js";
import { t } from "./i18n.js";

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
