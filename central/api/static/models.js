// The models page (admins): registered versions per hazard, which edges run what, a candidate's comparison
// with the running model on the labelled set (`hazardwatch models compare --json`, uploaded with the
// candidate), and the rollout button, which asks again before rolling out a candidate that catches fewer
// hazards or raises more false alarms there, or one that was never compared.
import { api } from "./api.js";
import { el, icon, time } from "./fmt.js";
import { t } from "./i18n.js";

const ROWS = [ // [label key, value of a run]
  ["cmp.caught", (r) => `${r.tp} / ${r.n_pos}`, (r) => r.tp],
  ["cmp.false_alarms", (r) => `${r.fp} / ${r.n_neg}`, (r) => r.fp],
  ["cmp.precision", (r) => r.precision.toFixed(3), (r) => r.precision],
  ["cmp.recall", (r) => r.recall.toFixed(3), (r) => r.recall],
  ["cmp.f1", (r) => r.f1.toFixed(3), (r) => r.f1],
  ["cmp.ms", (r) => r.ms_per_image.toFixed(1), (r) => r.ms_per_image],
];

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
  }

  async open() {
    try {
      const [models, edges, rollouts] = await Promise.all([api("/models"), api("/edges"), api("/rollouts")]);
      Object.assign(this, { models: models.items, running: models.edges, edges: edges.items, rollouts: rollouts.items });
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
  }

  card(m) {
    const key = `${m.name}/${m.version}`;
    const on = this.running.filter((r) => r.model_name === m.name && r.model_version === m.version);
    const risk = rolloutRisk(m);
    return el("section.model-card", { dataset: { key, hazard: m.hazard } },
      el("div.model-head", {}, icon(m.hazard),
        el("strong", {}, `${m.name} ${m.version}`),
        el("span.muted", {}, ` · ${t(`hazard.${m.hazard}`)} · ${t("models.threshold", { thr: m.threshold })} · ${t("models.registered", { who: m.registered_by, at: time(m.registered_at, "short") })}`)),
      m.note ? el("p.muted", {}, m.note) : null,
      el("p.model-edges", {}, on.length ? t("models.running_on", { edges: on.map((r) => `${r.edge_id} (${r.state})`).join(", ") }) : t("models.running_nowhere")),
      this.comparisonBlock(m.comparison),
      el("div.buttons", {},
        el("button.btn.primary.rollout", { type: "button", onclick: () => this.rollout(m, false) }, t("models.rollout"))),
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

  /** Every known edge that reports a model of this hazard (else every edge), canary first. */
  targets(m) {
    const withHazard = [...new Set(this.running.filter((r) => r.hazard === m.hazard).map((r) => r.edge_id))];
    return withHazard.length ? withHazard : this.edges.map((e) => e.edge_id);
  }

  async rollout(m, anyway) {
    const key = `${m.name}/${m.version}`;
    if (!anyway && rolloutRisk(m)) {
      this.confirm = key;
      return this.render();
    }
    this.confirm = null;
    const edges = this.targets(m);
    if (!edges.length) {
      this.msg.set(key, t("models.no_edges"));
      return this.render();
    }
    try {
      const r = await api("/rollouts", { method: "POST", body: { model: m.name, version: m.version, edges } });
      this.msg.set(key, t("models.rolled", { id: r.id, canary: r.canary, n: edges.length }));
      this.rollouts = (await api("/rollouts")).items;
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
