// The models page (admins): registered versions per hazard, which edges run what, a candidate's comparison
// with the running model on the labelled set (`hazardwatch models compare --json`, uploaded with the
// candidate), the canary picker (which edges the rollout goes to, with their cameras, and which one goes
// first), and the rollout button, which asks again before rolling out a candidate that catches fewer
// hazards or raises more false alarms there, or one that was never compared.
import { api } from "./api.js";
import { el, icon, labelCells, time } from "./fmt.js";
import { t } from "./i18n.js";

const ROWS = [ // [label key, value of a run]
  ["cmp.caught", (r) => `${r.tp} / ${r.n_pos}`, (r) => r.tp],
  ["cmp.false_alarms", (r) => `${r.fp} / ${r.n_neg}`, (r) => r.fp],
  ["cmp.precision", (r) => r.precision.toFixed(3), (r) => r.precision],
  ["cmp.recall", (r) => r.recall.toFixed(3), (r) => r.recall],
  ["cmp.f1", (r) => r.f1.toFixed(3), (r) => r.f1],
  ["cmp.ms", (r) => r.ms_per_image.toFixed(1), (r) => r.ms_per_image],
];

const TERMINAL = ["active", "failed", "rolled_back"]; // an edge in these states is done with its rollout
const change = (key, n) => t(`${key}_${n > 0 ? "more" : n < 0 ? "fewer" : "same"}`, { n: Math.abs(n) });
const signed = (n, digits) => (n > 0 ? "+" : "") + (digits ? n.toFixed(digits) : String(n));

/** Why a rollout of this version needs a second click, in words; "" when it does not. */
export function rolloutRisk(m) {
  const c = m.comparison;
  if (!c) return t("cmp.risk_none");
  const s = c.summary;
  const parts = [];
  if (s.catches_fewer) parts.push(t("cmp.risk_fewer", { n: -s.caught, of: c.candidate.n_pos }));
  if (s.more_false_alarms) parts.push(t("cmp.risk_fa", { n: s.false_alarms, of: c.candidate.n_neg }));
  return parts.join(" ");
}

export class ModelsView {
  constructor(root) {
    this.root = root;
    this.msg = new Map(); // version key -> message under its rollout button
    this.confirm = null; // version key whose rollout waits for "roll out anyway"
    this.picks = new Map(); // version key -> {edges: Set of edge ids, canary: edge id or null}
  }

  async open() {
    try {
      const [models, edges, rollouts, cameras] = await Promise.all([api("/models"), api("/edges"), api("/rollouts"), api("/cameras")]);
      Object.assign(this, { models: models.items, running: models.edges, edges: edges.items, rollouts: rollouts.items,
        cameras: cameras.items });
    } catch (err) {
      this.root.replaceChildren(el("p.error", {}, t("error", { detail: err.detail || err.message })));
      return;
    }
    this.render();
  }

  render() {
    const cards = this.models.map((m) => this.card(m));
    this.root.replaceChildren(
      el("div.panel.wide", {},
        el("div.panel-head", {}, el("h2", {}, t("models.title")), el("div.summary", {}, t("models.summary", { n: this.models.length }))),
        cards.length ? el("div.model-cards", {}, cards) : el("p.empty", {}, t("models.empty"))),
      this.rolloutsPanel());
    labelCells(this.root); // on a phone each figure says which model and column it is
  }

  card(m) {
    const key = `${m.name}/${m.version}`;
    const on = this.running.filter((r) => r.model_name === m.name && r.model_version === m.version);
    const risk = rolloutRisk(m);
    const pick = this.pickFor(m);
    return el("section.model-card", { dataset: { key, hazard: m.hazard } },
      el("div.model-head", {}, icon(m.hazard),
        el("strong", {}, `${m.name} ${m.version}`),
        el("span.muted", {}, ` · ${t(`hazard.${m.hazard}`)} · ${t("models.threshold", { thr: m.threshold })} · ${t("models.registered", { who: m.registered_by, at: time(m.registered_at, "short") })}`)),
      m.note ? el("p.muted", {}, m.note) : null,
      el("p.model-edges", {}, on.length ? t("models.running_on", { edges: on.map((r) => `${r.edge_id} (${r.state})`).join(", ") }) : t("models.running_nowhere")),
      ...this.rollouts.filter((r) => r.model.name === m.name && r.model.version === m.version && ["canary", "rolling"].includes(r.state))
        .map((r) => el("p.model-rolling", {}, t(`models.rolling_${r.state}`, { id: r.id, canary: r.canary }))),
      this.comparisonBlock(m.comparison),
      this.picker(m),
      el("div.buttons", {},
        el("button.btn.primary.rollout", { type: "button", disabled: !pick.canary, onclick: () => this.rollout(m, false) },
          pick.canary ? t("models.rollout_to", { canary: pick.canary, n: pick.edges.size - 1 })
            : t(this.choices(m).some((c) => !c.busy) ? "models.rollout_none" : "models.rollout_busy"))),
      this.confirm === key ? el("div.rollout-warning", {}, el("p", {}, t("models.confirm", { why: risk })),
        el("div.buttons", {},
          el("button.btn.danger.rollout-anyway", { type: "button", onclick: () => this.rollout(m, true) }, t("models.anyway")),
          el("button.btn.ghost", { type: "button", onclick: () => { this.confirm = null; this.render(); } }, t("models.cancel")))) : null,
      el("p.action-msg", {}, this.msg.get(key) || ""));
  }

  comparisonBlock(c) {
    if (!c) return el("p.cmp-none", {}, t("cmp.none"));
    const s = c.summary;
    const verdict = s.catches_fewer ? "worse" : s.more_false_alarms ? "mixed" : "better";
    return el("div.cmp", { dataset: { verdict } },
      el("p.cmp-line", {}, t("cmp.line", { n: s.labelled, caught: change("cmp.caught", s.caught), fa: change("cmp.fa", s.false_alarms) }),
        el("span.muted", {}, ` · ${t("cmp.by", { who: c.compared_by, at: time(c.compared_at, "short") })}`)),
      el("table.grid.cmp-table", {},
        el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, t("cmp.running", { model: c.running.model })),
          el("th", {}, t("cmp.candidate", { model: c.candidate.model })), el("th", {}, t("cmp.change")))),
        el("tbody", {}, ROWS.map(([label, show, num]) => {
          const d = num(c.candidate) - num(c.running);
          return el("tr", { dataset: { row: label.slice(4) } }, el("td", {}, t(label)), el("td", {}, show(c.running)), el("td", {}, show(c.candidate)),
            el("td.change", {}, d ? signed(d, Number.isInteger(d) ? 0 : 3) : "—"));
        }))),
      el("p.muted.cmp-frames", {}, t("cmp.frames", c.changed || {})));
  }

  /** Every edge a rollout of this version could go to: its state, its cameras (a model runs for all of an
   * edge's cameras), what it runs of this hazard now, and the unfinished rollout of this hazard it is in
   * (central refuses an edge in two), newest rollouts first. */
  choices(m) {
    const ids = [...new Set([...this.edges.map((e) => e.edge_id), ...this.running.map((r) => r.edge_id)])].sort();
    const state = new Map(this.edges.map((e) => [e.edge_id, e.state]));
    const busy = new Map();
    for (const r of this.rollouts) {
      if (!["canary", "rolling"].includes(r.state) || r.model.hazard !== m.hazard) continue;
      for (const e of r.edges) if (!busy.has(e.edge_id) && !TERMINAL.includes(e.state)) busy.set(e.edge_id, r.id);
    }
    return ids.map((id) => ({
      id, state: state.get(id) || "unknown", busy: busy.get(id),
      cameras: this.cameras.filter((c) => c.edge_id === id).map((c) => c.name || c.camera_id),
      runs: this.running.filter((r) => r.edge_id === id && r.hazard === m.hazard).map((r) => `${r.model_name} ${r.model_version}`),
    }));
  }

  /** The maintainer's pick for this version; at first every free edge that runs a model of its hazard (else
   * every free edge), with the first online one as canary. */
  pickFor(m) {
    const key = `${m.name}/${m.version}`;
    if (!this.picks.has(key)) {
      const free = this.choices(m).filter((c) => !c.busy);
      const withHazard = free.filter((c) => c.runs.length);
      const chosen = withHazard.length ? withHazard : free;
      const canary = (chosen.find((c) => c.state === "online") || chosen[0] || {}).id || null;
      this.picks.set(key, { edges: new Set(chosen.map((c) => c.id)), canary });
    }
    return this.picks.get(key);
  }

  /** One row per edge: roll out to it or not, and which one is the canary (picking a canary includes it;
   * leaving out the canary makes the next edge left in the canary). */
  picker(m) {
    const key = `${m.name}/${m.version}`;
    const pick = this.pickFor(m);
    const choices = this.choices(m);
    if (!choices.length) return el("p.muted.canary-picker", {}, t("models.no_edges"));
    const toggle = (id, on) => {
      if (on) pick.edges.add(id);
      else pick.edges.delete(id);
      if (!pick.edges.has(pick.canary)) pick.canary = choices.map((c) => c.id).find((e) => pick.edges.has(e)) || null;
      this.render();
    };
    const rows = choices.map((c) => {
      const canary = pick.canary === c.id;
      const why = c.busy ? t("models.pick_busy", { id: c.busy }) : "";
      return el("li.pick-row", { dataset: { edge: c.id, picked: pick.edges.has(c.id) ? "1" : "0", canary: canary ? "1" : "0" } },
        el("label.pick-in", {}, el("input.pick-edge", { type: "checkbox", checked: pick.edges.has(c.id), disabled: Boolean(c.busy),
          onchange: (e) => toggle(c.id, e.target.checked) }), el("strong", {}, c.id)),
        el("label.pick-canary", {}, el("input", { type: "radio", name: `canary-${key}`, checked: canary, disabled: Boolean(c.busy),
          onchange: () => { pick.canary = c.id; toggle(c.id, true); } }), t("models.pick_canary")),
        el("span.badge", { dataset: { state: c.state } }, t(`edge.${c.state}`)),
        el("span.pick-cams", {}, c.cameras.length ? c.cameras.join(", ") : t("models.pick_no_cameras")),
        el("span.muted", {}, c.runs.length ? t("models.pick_runs", { models: c.runs.join(", ") }) : t("models.pick_runs_none")),
        why ? el("span.pick-busy", {}, why) : null);
    });
    return el("fieldset.canary-picker", {}, el("legend", {}, t("models.pick_title")),
      el("p.muted", {}, t("models.pick_help")), el("ul.pick-list", {}, rows));
  }

  async rollout(m, anyway) {
    const key = `${m.name}/${m.version}`;
    if (!anyway && rolloutRisk(m)) {
      this.confirm = key;
      return this.render();
    }
    this.confirm = null;
    const pick = this.pickFor(m);
    if (!pick.canary) {
      this.msg.set(key, t("models.rollout_none"));
      return this.render();
    }
    const edges = [pick.canary, ...[...pick.edges].filter((e) => e !== pick.canary)];
    try {
      const r = await api("/rollouts", { method: "POST", body: { model: m.name, version: m.version, edges, canary: pick.canary } });
      this.msg.set(key, t(edges.length > 1 ? "models.rolled" : "models.rolled_one", { id: r.id, canary: r.canary, n: edges.length - 1 }));
      this.rollouts = (await api("/rollouts")).items;
      this.picks.delete(key); // the edges just picked are busy now: the next pick starts from what is free
    } catch (err) {
      this.msg.set(key, t("error", { detail: err.detail || err.message }));
    }
    this.render();
  }

  rolloutsPanel() {
    return el("div.panel.wide", {},
      el("div.panel-head", {}, el("h2", {}, t("models.rollouts"))),
      this.rollouts.length ? el("table.grid.rollouts", {},
        el("thead", {}, el("tr", {}, ["#", t("models.col.model"), t("col.state"), t("models.col.canary"), t("models.col.edges"), t("col.by")].map((h) => el("th", {}, h)))),
        el("tbody", {}, this.rollouts.map((r) => el("tr", { dataset: { id: r.id, state: r.state } },
          el("td", {}, String(r.id)), el("td", {}, `${r.model.name} ${r.model.version}`), el("td", {}, r.state), el("td", {}, r.canary),
          el("td", {}, r.edges.map((e) => `${e.edge_id}: ${e.state}`).join(", ")), el("td", {}, `${r.created_by}, ${time(r.created_at, "short")}`)))))
        : el("p.empty", {}, t("models.no_rollouts")));
  }
}
