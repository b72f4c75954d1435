// The map: Leaflet (vendored under /static/vendor/leaflet/, no CDN) with the site's tiles when configured,
// and the configured GeoJSON layers (district outline, rivers, roads) and named areas drawn over them, so
// the map still reads when the tile server is off or unreachable. Cameras, incidents and view cones come
// from central's API; incidents closer than a grid cell on screen are drawn as one counted cluster so a
// burst of a thousand stays readable, and redraws are coalesced to one per animation frame.
import { svg, icon } from "./fmt.js";
import { t } from "./i18n.js";
import { haversineKm, sector, wedge } from "./mapgeo.js";
import { WarningLayer, warningText } from "./warnmap.js";

export { placeText } from "./mapgeo.js";

const L = window.L;
const CELL_PX = 56; // incidents whose markers would overlap are one cluster
const FIT_PAD = 28;
const CAM_CONE_PX = 30;
const LABELS_MAX = 60; // more cameras than this on screen: dots without names (they would only overlap)
const STATE_COLOURS = { online: "#22c55e", degraded: "#f59e0b", offline: "#ef4444", unknown: "#6b7280" }; // app.css
const VIEW_PAD = 0.15; // markers are kept this far (a share of the view) beyond the screen's edges
const SEGMENT_MIN_PX = 40; // a selected incident's stretch along the view is zoomed to at least this long
// with no tiles the configured layers are all the map has: a selected incident is shown in its named area
// (or the nearest), never closer than this, so outline, roads and names stay around the view cone
const NO_TILES_MAX_ZOOM = 14;
const SEVERITY_RANK = { extreme: 3, severe: 2, moderate: 1, minor: 0 };
// a camera's name starts this far from its dot's centre, on whichever side it goes; the second clears an
// incident marker drawn over the camera (an incident a few hundred metres along its view)
const DOT_GAPS_PX = [10, 17];

function pathStyle(style, pane) {
  return {
    pane, interactive: false, color: style.color, weight: style.weight, dashArray: style.dash || null,
    fill: Boolean(style.fill_color), fillColor: style.fill_color || style.color, fillOpacity: style.fill_opacity,
  };
}

function divIcon(node, size, className) {
  return L.divIcon({ html: node, className, iconSize: [size, size], iconAnchor: [size / 2, size / 2] });
}

export class MapView {
  constructor(container, footEl, { onSelect = () => {} } = {}) {
    this.el = container;
    this.foot = footEl;
    this.onSelect = onSelect;
    this.data = { cameras: [], incidents: [], sightings: new Map(), selected: null };
    this.tiles = null;
    this.tileState = { loaded: 0, failed: 0 };
    this.userMoved = false;
    this.fitKey = "";
    this.fitted = false;
    this.frame = 0;
    this.drawn = new Map(); // key -> {layer, sig}: only what changed is replaced
    this.watch = new Map(); // camera key -> [{hazard, level, reason}]: raised by weather warnings
    this.areas = []; // configured named areas [{name, bounds}]: the context a selection keeps without tiles
    this.map = L.map(container, { zoomControl: false, zoomSnap: 0.25, worldCopyJump: true, minZoom: 2, maxZoom: 19 });
    this.map.attributionControl.setPrefix(false);
    this.map.createPane("geo").style.zIndex = 350; // configured layers: over tiles, under cones and markers
    L.control.scale({ imperial: false, position: "bottomleft" }).addTo(this.map);
    this.map.setView([20, 110], 3);
    this.geo = L.layerGroup().addTo(this.map);
    this.warnings = new WarningLayer(this.map);
    this.overlay = L.layerGroup().addTo(this.map);
    this.canvas = L.canvas({ padding: VIEW_PAD });
    this.map.on("dragstart", () => { this.userMoved = true; });
    this.map.on("zoomend moveend", () => this.schedule());
    new ResizeObserver(() => { this.map.invalidateSize({ pan: false }); this.schedule(); }).observe(container);
  }

  /** The site's map from GET /api/v1/map: tiles (or none), GeoJSON layers and named areas. */
  configure(cfg) {
    if (this.tiles) this.tiles.remove();
    this.tiles = null;
    this.tileState = { loaded: 0, failed: 0 };
    if (cfg.tiles) {
      this.tiles = L.tileLayer(cfg.tiles.url, {
        subdomains: cfg.tiles.subdomains || "abc", maxZoom: cfg.tiles.max_zoom, attribution: escapeText(cfg.tiles.attribution || ""),
        crossOrigin: false,
      });
      this.tiles.on("tileload", () => { this.tileState.loaded += 1; this.renderFoot(); });
      this.tiles.on("tileerror", () => { this.tileState.failed += 1; this.renderFoot(); });
      if (this.fitted) this.tiles.addTo(this.map); // else at the first fit: no tiles of the whole world first
    }
    this.el.classList.toggle("no-tiles", !cfg.tiles);
    this.configured = true;
    this.geo.clearLayers();
    this.geoBounds = L.latLngBounds([]);
    this.areas = [];
    for (const layer of cfg.layers || []) this._addGeo(layer.data, layer.style, layer.label_property, `geo-layer geo-${layer.name}`);
    for (const area of cfg.areas || []) {
      this._addGeo(area.data, area.style, area.name_property, "geo-area").eachLayer((l) => {
        if (l.getBounds) this.areas.push({ name: l.feature?.properties?.[area.name_property], bounds: l.getBounds() });
      });
    }
    this.fitKey = "";
    this.schedule();
  }

  _addGeo(data, style, labelProp, cls) {
    const gj = L.geoJSON(data, {
      style: () => ({ ...pathStyle(style, "geo"), className: cls }),
      pointToLayer: (_f, ll) => L.circleMarker(ll, { ...pathStyle(style, "geo"), radius: 3, className: cls }),
      onEachFeature: (f, layer) => {
        const label = labelProp && f.properties ? f.properties[labelProp] : null;
        if (label) layer.bindTooltip(String(label), { permanent: true, direction: "center", className: `geo-label ${cls}-label` });
      },
    });
    gj.addTo(this.geo);
    if (gj.getBounds().isValid()) this.geoBounds.extend(gj.getBounds());
    return gj;
  }

  /** cameras: API rows; incidents: summaries; sightings: Map(incidentId -> sightings[]). */
  update(data) {
    const picked = data.selected !== null && data.selected !== this.data.selected;
    this.data = data;
    this.updated = true;
    if (picked) this.focus(data.incidents.find((i) => i.id === data.selected));
    this.schedule();
  }

  /** Bring a newly selected incident into view, keeping the zoom unless its line-of-sight stretch would be
   * too short to see: then show it with its camera (and, with no tiles, in its named area). */
  focus(inc) {
    const pos = inc && MapView.position(inc);
    if (!pos) return;
    const seg = inc.place && inc.place.segment;
    const zoom = this.map.getZoom();
    const short = seg && this.map.project(seg[0], zoom).distanceTo(this.map.project(seg[1], zoom)) < SEGMENT_MIN_PX;
    if (short && inc.location) {
      this.userMoved = true;
      const bounds = L.latLngBounds([[inc.location.lat, inc.location.lon], ...seg]);
      const bare = !this.tiles;
      const area = bare && this._areaAround(inc.place.area, bounds.getCenter());
      if (area) bounds.extend(area);
      this.map.fitBounds(bounds, { padding: [60, 60], maxZoom: bare ? NO_TILES_MAX_ZOOM : 17, animate: false });
    } else if (!this.map.getBounds().pad(-0.05).contains(pos)) {
      this.userMoved = true;
      this.map.panTo(pos, { animate: false });
    }
  }

  /** The bounds of the named area called `name`, else of the one nearest `at`; null with none configured. */
  _areaAround(name, at) {
    const named = this.areas.find((a) => a.name && a.name === name);
    if (named) return named.bounds;
    const gap = (b) => (b.contains(at) ? 0 : at.distanceTo(L.latLng(
      Math.min(Math.max(at.lat, b.getSouth()), b.getNorth()), Math.min(Math.max(at.lng, b.getWest()), b.getEast()))));
    const near = [...this.areas].sort((a, b) => gap(a.bounds) - gap(b.bounds))[0];
    return near ? near.bounds : null;
  }

  /** Cameras on raised watch (GET /api/v1/watch items): ringed on the map, named under it. */
  setWatch(items) {
    this.watch = new Map();
    for (const w of items || []) {
      const key = `${w.edge_id}/${w.camera_id}`;
      if (!this.watch.has(key)) this.watch.set(key, []);
      this.watch.get(key).push(w);
    }
    this.schedule();
  }

  /** Weather warnings (GET /api/v1/warnings items): those in force drawn as their CAP areas. */
  setWarnings(items) {
    this.warnings.set(items);
  }

  /** Bring a warning's areas into view (its legend entry was clicked). */
  showWarning(id) {
    const bounds = this.warnings.boundsOf(id);
    if (!bounds) return;
    this.userMoved = true;
    this.map.fitBounds(bounds, { padding: [20, 20], animate: false });
  }

  /** Redraw at most once per animation frame, however many events arrive. */
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const want = new Map();
    const placed = this._drawCameras(want);
    this._drawIncidents(want);
    for (const [key, item] of this.drawn) {
      if (want.get(key)?.sig !== item.sig) {
        item.layer.remove();
        this.drawn.delete(key);
      }
    }
    for (const [key, item] of want) {
      if (this.drawn.has(key)) continue;
      const layer = item.make();
      layer.addTo(this.overlay);
      this.drawn.set(key, { layer, sig: item.sig });
    }
    this.unplaced = this.data.cameras.length - placed;
    this.declutter();
    this.renderFoot();
    const key = this._pointsKey();
    if (!this.userMoved && key !== this.fitKey) this.fit();
  }

  /** No label over another or over a dot (or a raised-watch ring): each camera's name goes right, left, below or above its dot,
   * whichever side is free (inside the map if it can), a little further out past an incident's marker; then area names, then river and road names, each
   * at its place or up to two lines above or below it; a name with no free place is hidden until a zoom frees one. */
  declutter() {
    const view = this.el.getBoundingClientRect();
    const cams = [...this.el.querySelectorAll(".cam-label")];
    const areas = [...this.el.querySelectorAll(".geo-area-label")];
    const lines = [...this.el.querySelectorAll(".geo-label:not(.geo-area-label)")];
    for (const l of [...cams, ...areas, ...lines]) {
      l.classList.remove("at-left", "at-below", "at-above", "lbl-hidden");
      l.style.marginTop = "";
      l.style.removeProperty("--gap");
    }
    const taken = [...this.el.querySelectorAll(".cam-dot, .inc-dot, .cluster-dot, circle.watch")].map((d) => box(d.getBoundingClientRect(), 1));
    const measured = [...cams, ...areas, ...lines].map((l) => [l, l.getBoundingClientRect()]); // one layout for all
    for (const [l, r] of measured) {
      if (!r.width || r.right < view.left || r.left > view.right || r.bottom < view.top || r.top > view.bottom) continue;
      const [w, h] = [r.width, r.height];
      let options;
      if (l.classList.contains("cam-label")) {
        const c = l.parentElement.getBoundingClientRect();
        const [cx, cy] = [c.left + c.width / 2, c.top + c.height / 2];
        const y = cy - h / 2;
        options = DOT_GAPS_PX.flatMap((gap) => [[["", gap], cx + gap, y], [["at-left", gap], cx - gap - w, y],
          [["at-below", gap], cx - w / 2, cy + gap], [["at-above", gap], cx - w / 2, cy - gap - h]]);
      } else {
        options = [0, -h, h, -2 * h, 2 * h].map((dy) => [dy, r.left, r.top + dy]);
      }
      const free = options.map(([how, x, y]) => [how, box({ left: x, top: y, right: x + w, bottom: y + h }, 1)])
        .filter(([, b]) => !taken.some((t) => overlaps(b, t)));
      const pick = free.find(([, b]) => b.x1 >= view.left && b.x2 <= view.right && b.y1 >= view.top && b.y2 <= view.bottom) || free[0];
      if (!pick) {
        l.classList.add("lbl-hidden");
        continue;
      }
      taken.push(pick[1]);
      if (typeof pick[0] === "number") {
        l.style.marginTop = pick[0] ? `${pick[0]}px` : "";
      } else {
        const [side, gap] = pick[0];
        if (side) l.classList.add(side);
        l.style.setProperty("--gap", `${gap}px`);
      }
    }
  }

  renderFoot() {
    const notes = [];
    if (this.unplaced) notes.push(t("map.no_position", { n: this.unplaced }));
    if (this.watch.size) {
      // from the warnings behind each raised camera, in the page's language (the stored reason is English)
      const why = (w) => (w.warnings?.length ? w.warnings.filter((x) => x.level === w.level).map(warningText) : [w.reason]);
      const reasons = [...new Set([...this.watch.values()].flat().flatMap(why).filter(Boolean))];
      notes.push(t("map.watch", { what: `${t("list.cameras", { n: this.watch.size })}${reasons.length ? ` — ${reasons.join("; ")}` : ""}` }));
    }
    if (!this.tiles) notes.push(t("map.no_tiles"));
    else if (this.tileState.failed && !this.tileState.loaded) notes.push(t("map.tiles_failed"));
    this.foot.replaceChildren(...notes.map((n) => { // one note a span: a reader sees where each ends
      const span = document.createElement("span");
      span.className = "foot-note";
      span.textContent = n;
      return span;
    }));
    this.el.dataset.tiles = !this.tiles ? "none" : this.tileState.loaded ? "ok" : this.tileState.failed ? "failed" : "loading";
  }

  _drawCameras(want) {
    let placed = 0;
    const view = this.map.getBounds().pad(VIEW_PAD);
    const shown = [];
    for (const c of this.data.cameras) {
      if (c.lat === null || c.lon === null || c.lat === undefined) continue;
      placed += 1;
      if (view.contains([c.lat, c.lon])) shown.push(c);
    }
    // Many cameras on screen: plain dots on one canvas (cheap to draw, nothing to rebuild on zoom),
    // without names or cones that would only overlap; few: full markers with name and view wedge.
    const dense = shown.length > LABELS_MAX;
    this.el.classList.toggle("dense", dense);
    for (const c of shown) (dense ? this._wantCameraDot : this._wantCamera).call(this, want, c);
    return placed;
  }

  _wantCameraDot(want, c) {
    const key = `${c.edge_id}/${c.camera_id}`;
    const state = c.state || "unknown";
    const raised = this.watch.has(key);
    want.set(`camdot:${key}`, { sig: `${c.lat}|${c.lon}|${state}|${raised}`, make: () => L.circleMarker([c.lat, c.lon], {
      renderer: this.canvas, radius: 4, interactive: false, fillOpacity: 1, fillColor: STATE_COLOURS[state] || STATE_COLOURS.unknown,
      color: raised ? "#38bdf8" : "#0b0f14", weight: raised ? 2.5 : 1,
    }) });
  }

  _wantCamera(want, c) {
    const key = `${c.edge_id}/${c.camera_id}`;
    const state = c.state || "unknown";
    const name = c.name || c.camera_id;
    const watch = this.watch.get(key) || [];
    const level = watch.some((w) => w.level === "high") ? "high" : watch.length ? "elevated" : "";
    const watchText = watch.map((w) => `${t(`hazard.${w.hazard}`)} ${w.level}`).join(", ");
    const sig = [c.lat, c.lon, c.bearing_deg, c.fov_deg, state, name, c.reason, watchText].join("|");
    want.set(`cam:${key}`, { sig, make: () => {
      const size = CAM_CONE_PX * 2 + 4;
      const g = svg("g", { class: "cam", dataset: level ? { key, state, watch: level } : { key, state } });
      if (c.bearing_deg !== null && c.fov_deg !== null && c.fov_deg < 360) {
        g.append(svg("path", { class: "fov", d: wedge(0, 0, c.bearing_deg, c.fov_deg / 2, CAM_CONE_PX) }));
      }
      if (level) g.append(svg("circle", { class: `watch lvl-${level}`, r: 11 }));
      g.append(svg("circle", { class: "cam-dot", r: 6.5 }));
      const raised = watchText ? ` — ${t("map.watch", { what: watchText })}` : "";
      g.append(svg("title", {}, `${name} (${key}) — ${t(`cam.${state}`)}${c.reason ? `: ${c.reason}` : ""}${raised}`));
      const box = document.createElement("div");
      box.className = "cam-box";
      box.append(svg("svg", { class: "cam-svg", width: size, height: size, viewBox: `${-size / 2} ${-size / 2} ${size} ${size}` }, g));
      const label = document.createElement("span");
      label.className = "cam-label";
      label.dataset.key = key;
      label.dataset.state = state;
      label.textContent = name;
      box.append(label);
      return L.marker([c.lat, c.lon], { icon: divIcon(box, size, "cam-icon"), keyboard: false, interactive: false, zIndexOffset: -100 });
    } });
  }

  /** Where an incident is drawn: the middle of its line-of-sight stretch when known, else its location. */
  static position(inc) {
    const seg = inc.place && inc.place.segment;
    if (seg) return [(seg[0][0] + seg[1][0]) / 2, (seg[0][1] + seg[1][1]) / 2];
    return inc.location ? [inc.location.lat, inc.location.lon] : null;
  }

  _drawIncidents(want) {
    const { selected } = this.data;
    const zoom = this.map.getZoom();
    const view = this.map.getBounds().pad(VIEW_PAD);
    const cells = new Map();
    for (const inc of this.data.incidents) {
      const sightings = this.data.sightings.get(inc.id) || [];
      if (inc.hazard === "smoke" || inc.id === selected) this._drawCones(want, inc, sightings, selected);
      const seg = inc.place && inc.place.segment;
      if (seg) {
        want.set(`seg:${inc.id}`, { sig: `${seg}|${inc.id === selected}`, make: () =>
          L.polyline(seg, { className: `sight-seg${inc.id === selected ? " sel" : ""}`, interactive: false }) });
        if (inc.id === selected && inc.location) { // the camera's line of sight up to the stretch
          want.set(`sight:${inc.id}`, { sig: String(seg), make: () =>
            L.polyline([[inc.location.lat, inc.location.lon], seg[1]], { className: "sight-line", interactive: false }) });
        }
      }
      const pos = MapView.position(inc);
      if (!pos) continue;
      if (inc.id === selected) {
        this._wantIncident(want, inc, pos, true);
        continue;
      }
      const p = this.map.project(pos, zoom);
      const cell = `${Math.floor(p.x / CELL_PX)}:${Math.floor(p.y / CELL_PX)}`;
      if (!cells.has(cell)) cells.set(cell, []);
      cells.get(cell).push({ inc, pos });
    }
    for (const [cell, members] of cells) {
      if (members.length === 1) {
        if (view.contains(members[0].pos)) this._wantIncident(want, members[0].inc, members[0].pos, false);
        continue;
      }
      const lat = members.reduce((s, m) => s + m.pos[0], 0) / members.length;
      const lon = members.reduce((s, m) => s + m.pos[1], 0) / members.length;
      if (!view.contains([lat, lon])) continue;
      const worst = members.reduce((w, m) => (SEVERITY_RANK[m.inc.severity] > SEVERITY_RANK[w] ? m.inc.severity : w), "minor");
      const open = members.some((m) => m.inc.state === "open");
      want.set(`cluster:${zoom}:${cell}`, { sig: `${members.length}|${worst}|${open}|${lat}|${lon}`, make: () => {
        const g = svg("g", { class: `cluster sev-${worst}${open ? " st-open" : ""}`, dataset: { count: members.length } },
          svg("circle", { class: "cluster-dot", r: 16 }),
          svg("text", { class: "cluster-n", y: 4 }, String(members.length)),
          svg("title", {}, t("map.cluster", { n: members.length })));
        const box = svg("svg", { class: "inc-svg", width: 40, height: 40, viewBox: "-20 -20 40 40" }, g);
        const bounds = L.latLngBounds(members.map((m) => m.pos));
        const marker = L.marker([lat, lon], { icon: divIcon(box, 40, "cluster-icon"), keyboard: false, riseOnHover: true });
        marker.on("click", () => { this.userMoved = true; this.map.fitBounds(bounds.pad(0.3), { maxZoom: this.map.getZoom() + 3 }); });
        return marker;
      } });
    }
  }

  _wantIncident(want, inc, pos, isSelected) {
    const est = inc.location && inc.location.estimated;
    const sig = [pos, inc.severity, inc.state, inc.hazard, est, isSelected].join("|");
    want.set(`inc:${inc.id}`, { sig, make: () => {
      const g = svg("g", {
        class: `inc sev-${inc.severity} st-${inc.state}${isSelected ? " sel" : ""}`,
        dataset: { id: inc.id, hazard: inc.hazard, state: inc.state },
      });
      if (inc.state === "open") g.append(svg("circle", { class: "pulse", r: 14 }));
      if (est) g.append(svg("circle", { class: "est", r: 19 }));
      g.append(svg("circle", { class: "inc-dot", r: 12 }));
      const ic = icon(inc.hazard, "inc-icon");
      for (const [k, v] of Object.entries({ x: -8, y: -8, width: 16, height: 16 })) ic.setAttribute(k, v);
      g.append(ic);
      const where = inc.place && inc.place.area ? ` · ${inc.place.area}` : "";
      g.append(svg("title", {}, `#${inc.id} ${t(`hazard.${inc.hazard}`)} — ${t(`state.${inc.state}`)}${where}${est ? ` (${t("map.estimated")})` : ""}`));
      const box = svg("svg", { class: "inc-svg", width: 48, height: 48, viewBox: "-24 -24 48 48" }, g);
      const marker = L.marker(pos, { icon: divIcon(box, 48, "inc-icon-box"), keyboard: false, zIndexOffset: isSelected ? 1000 : 0 });
      marker.on("click", () => this.onSelect(inc.id));
      return marker;
    } });
  }

  _drawCones(want, inc, sightings, selected) {
    for (const s of sightings) {
      let km = 8;
      if (inc.location) km = Math.min(40, Math.max(1, 1.5 * haversineKm(s, inc.location)));
      const sel = inc.id === selected;
      const half = Math.max(s.half_width_deg, 0.75);
      want.set(`cone:${inc.id}:${s.camera}`, { sig: [s.lat, s.lon, s.azimuth_deg, half, km, sel].join("|"), make: () =>
        L.polygon(sector(s.lat, s.lon, s.azimuth_deg, half, km), { className: `cone${sel ? " sel" : ""}`, interactive: false }) });
    }
  }

  _points() {
    const pts = [];
    for (const c of this.data.cameras) if (c.lat !== null && c.lon !== null && c.lat !== undefined) pts.push([c.lat, c.lon]);
    for (const i of this.data.incidents) {
      const pos = MapView.position(i);
      if (pos) pts.push(pos);
    }
    return pts;
  }

  _pointsKey() {
    const pts = this._points();
    if (!pts.length) return `geo:${this.geoBounds && this.geoBounds.isValid() ? this.geoBounds.toBBoxString() : ""}`;
    return L.latLngBounds(pts).toBBoxString();
  }

  /** Show every camera, incident and configured layer, with room for the camera names beside their dots. */
  fit() {
    this.fitKey = this._pointsKey();
    const pts = this._points();
    let bounds = pts.length ? L.latLngBounds(pts) : this.geoBounds;
    const known = bounds && bounds.isValid();
    if (known || (this.configured && this.updated)) { // tiles once there is a place to show, or surely none
      this.fitted = true;
      if (this.tiles && !this.map.hasLayer(this.tiles)) this.tiles.addTo(this.map);
    }
    if (!known) return;
    const geo = this.geoBounds && this.geoBounds.isValid() ? this.geoBounds : null;
    // the district around the cameras too: near them, or holding them all (one camera alone says nothing of where it is)
    if (pts.length && geo && (bounds.pad(2).contains(geo) || geo.contains(bounds))) bounds = bounds.extend(geo);
    const labelW = Math.max(0, ...[...this.el.querySelectorAll(".cam-label")].map((l) => l.offsetWidth));
    this.map.fitBounds(bounds, {
      paddingTopLeft: [FIT_PAD, FIT_PAD], paddingBottomRight: [FIT_PAD + labelW + 14, FIT_PAD + 10], maxZoom: 15, animate: false,
    });
    this.userMoved = false;
  }

  zoom(factor) {
    this.userMoved = true;
    this.map.setZoom(this.map.getZoom() + Math.log2(factor), { animate: false });
  }
}

/** A screen rectangle grown by `pad` px on every side. */
function box(r, pad) {
  return { x1: r.left - pad, y1: r.top - pad, x2: r.right + pad, y2: r.bottom + pad };
}

function overlaps(a, b) {
  return a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
}

function escapeText(s) {
  const d = document.createElement("div");
  d.textContent = s;
  return d.innerHTML;
}
