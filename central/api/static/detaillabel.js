// Labelling from the incident detail: the operator who has just judged the evidence records it as
// training data there (POST /api/v1/incidents/{id}/labels), with the same verdict and false-alarm-kind
// keys as the Labelling tab (y, n, a; 1-9, 0, o; Enter saves), without switching tabs.
import { api } from "./api.js";
import { el, time } from "./fmt.js";
import { t } from "./i18n.js";
import { applyChoice, choiceButtons, choiceForKey, choiceReady, labelBody } from "./labelling.js";

const EMPTY = { verdict: null, kind: null };
const labelText = (l) => (l.verdict === "false_alarm" ? `${t("lab.verdict.false_alarm")} (${t(`lab.kind.${l.false_alarm_kind}`)})` : t(`lab.verdict.${l.verdict}`));

export class DetailLabel {
  /** isActive(): the detail is on screen and the reader may label; onSaved(id): reload the detail. */
  constructor({ isActive, onSaved }) {
    this.isActive = isActive;
    this.onSaved = onSaved;
    this.id = null;
    this.choice = EMPTY;
    this.labels = [];
    this.msg = "";
    this.node = null;
    this.saving = false;
    document.addEventListener("keydown", (e) => this.onKey(e));
  }

  /** The block for incident `v` and its labels so far (the newest counts); a choice survives re-renders. */
  block(v, labels) {
    if (this.id !== v.id) {
      this.id = v.id;
      this.choice = EMPTY;
      this.msg = "";
    }
    this.labels = labels || [];
    this.node = el("section.detail-label", { dataset: { incident: v.id } });
    this.render();
    return this.node;
  }

  render() {
    const last = this.labels[this.labels.length - 1];
    this.node.replaceChildren(
      el("h3", {}, t("dl.title")),
      last
        ? el("p.dl-current", { dataset: { verdict: last.verdict } }, t("dl.current", { what: labelText(last), who: last.labelled_by, at: time(last.labelled_at, "short") }))
        : el("p.muted.dl-current", {}, t("dl.none")),
      ...choiceButtons(this.choice, (change) => this.set(change)),
      el("div.buttons", {}, el("button.btn.primary.dl-save", { type: "button", disabled: !choiceReady(this.choice) || this.saving,
        onclick: () => this.save() }, el("kbd", {}, "Enter"), ` ${t("dl.save")}`)),
      el("p.action-msg.dl-msg", {}, this.msg),
      el("p.muted.lab-keys", {}, t("dl.keys")));
  }

  set(change) {
    this.choice = applyChoice(this.choice, change);
    this.msg = "";
    this.render();
  }

  async save() {
    if (!choiceReady(this.choice) || this.saving) return;
    const id = this.id;
    this.saving = true;
    try {
      const label = await api(`/incidents/${id}/labels`, { method: "POST", body: labelBody(this.choice) });
      if (this.id !== id) return;
      this.labels = [...this.labels, label];
      this.choice = EMPTY;
      this.msg = t("dl.saved", { what: labelText(label) });
    } catch (err) {
      this.msg = t("error", { detail: err.detail || err.message });
    } finally {
      this.saving = false;
    }
    this.render();
    this.onSaved(id);
  }

  onKey(e) {
    if (!this.node || !this.node.isConnected || !this.isActive() || e.ctrlKey || e.metaKey || e.altKey) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
    if (e.key === "Enter") {
      // Enter on a focused button, link or other row keeps its own meaning; elsewhere (the selected row
      // included) it saves a finished choice
      const other = e.target.tagName === "LI" && !e.target.classList.contains("selected");
      if (other || /^(BUTTON|A|SUMMARY|VIDEO)$/.test(e.target.tagName) || !choiceReady(this.choice)) return;
      this.save();
    } else {
      const change = choiceForKey(e.key);
      if (!change) return;
      this.set(change);
    }
    e.preventDefault();
  }
}
