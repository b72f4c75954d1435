// Weather warnings in force on the map: each CAP area (polygon, or circle) of a warning from
// GET /api/v1/warnings, filled in its CAP severity's colour under the cameras and incidents, with the
// headline as its tooltip, so the duty officer sees which cameras a warning covers and why they are raised.
import { t } from "./i18n.js";

const L = window.L;
export const WARNING_COLOURS = { extreme: "#dc2626", severe: "#f97316", moderate: "#eab308", minor: "#3b82f6", unknown: "#94a3b8" };
const RANK = ["extreme", "severe", "moderate", "minor", "unknown"];

export const severityOf = (w) => (String(w.severity || "").toLowerCase() in WARNING_COLOURS ? String(w.severity).toLowerCase() : "unknown");

/** A warning in the page's language: the agency's event name (as issued) and our word for its CAP severity. */
export const warningText = (w) => t("map.legend.warning", { event: w.event, severity: t(`warn.sev.${severityOf(w)}`) });

export class WarningLayer {
  constructor(map) {
    map.createPane("warnings").style.zIndex = 360; // over the configured layers, under cones and markers
    this.group = L.layerGroup().addTo(map);
    this.items = [];
    this.sig = "";
  }

  /** The warnings in force with a shape, most severe on top. */
  set(items) {
    const shown = (items || []).filter((w) => w.in_force && w.geometry && w.geometry.features.length)
      .sort((a, b) => RANK.indexOf(severityOf(b)) - RANK.indexOf(severityOf(a)));
    const sig = shown.map((w) => `${w.id}|${w.severity}|${w.headline}`).join(",");
    if (sig === this.sig) return;
    this.sig = sig;
    this.items = shown;
    this.group.clearLayers();
    this.bounds = new Map(); // warning id -> the bounds of its areas
    for (const w of shown) {
      const sev = severityOf(w);
      const style = { pane: "warnings", color: WARNING_COLOURS[sev], weight: 2, dashArray: "6 4", fillColor: WARNING_COLOURS[sev],
        fillOpacity: 0.12, className: `warning sev-${sev}` };
      const gj = L.geoJSON(w.geometry, {
        style: () => style,
        pointToLayer: (f, ll) => L.circle(ll, { ...style, radius: f.properties.radius_m }),
        onEachFeature: (f, layer) => layer.bindTooltip(`${w.headline || w.event}${f.properties.area ? ` · ${f.properties.area}` : ""}`,
          { sticky: true, direction: "auto", className: "warning-tip" }), // auto: on the side with room
      }).addTo(this.group);
      this.bounds.set(w.id, gj.getBounds());
    }
  }

  /** The bounds of a warning's areas (to bring it into view), or null. */
  boundsOf(id) {
    const b = this.bounds && this.bounds.get(id);
    return b && b.isValid() ? b : null;
  }

  /** One legend entry per warning in force: its event and severity, in its colour. */
  legendKeys() {
    return this.items.map((w) => ({ id: w.id, severity: severityOf(w), text: warningText(w) }));
  }
}
