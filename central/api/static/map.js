// The map: an SVG in Web Mercator projection drawn from camera coordinates, so it needs no internet.
// Optional XYZ tiles (dashboard.tile_url in central's config) are laid underneath when configured.
import { svg, icon } from "./fmt.js";
import { t } from "./i18n.js";

const EARTH_M = 40075016.686; // equator length: metres per world unit at latitude 0
const MAX_SCALE = 256 * 2 ** 19;

function world(lat, lon) {
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}

function haversineKm(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 12742 * Math.asin(Math.min(1, Math.sqrt(h)));
}

function niceMetres(m) {
  const p = 10 ** Math.floor(Math.log10(m));
  for (const f of [5, 2, 1]) if (f * p <= m) return f * p;
  return p;
}

export class MapView {
  constructor(svgEl, footEl, { tileUrl = "", tileAttribution = "", onSelect = () => {} } = {}) {
    this.svg = svgEl;
    this.foot = footEl;
    this.tileUrl = tileUrl;
    this.tileAttribution = tileAttribution;
    this.onSelect = onSelect;
    this.view = null; // {cx, cy, s}: centre in world units, pixels per world unit
    this.userMoved = false;
    this.data = { cameras: [], incidents: [], sightings: new Map(), selected: null };
    this._bindPointer();
    new ResizeObserver(() => this.render()).observe(svgEl.parentElement);
  }

  size() {
    const r = this.svg.parentElement.getBoundingClientRect();
    return [Math.max(200, r.width), Math.max(160, r.height)];
  }

  /** cameras: API rows; incidents: summaries; sightings: Map(incidentId -> sightings[]). */
  update(data) {
    this.data = data;
    if (!this.view || !this.userMoved) this.fit(false);
    this.render();
  }

  points() {
    const pts = [];
    for (const c of this.data.cameras) if (c.lat !== null && c.lon !== null) pts.push(world(c.lat, c.lon));
    for (const i of this.data.incidents) if (i.location) pts.push(world(i.location.lat, i.location.lon));
    return pts;
  }

  fit(render = true) {
    const [w, h] = this.size();
    const pts = this.points();
    if (!pts.length) {
      this.view = { cx: world(0, 0)[0], cy: world(0, 0)[1], s: 256 * 4 };
    } else {
      const xs = pts.map((p) => p[0]);
      const ys = pts.map((p) => p[1]);
      const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      const minSpan = 3 / 40075; // about 3 km, so one camera alone is not drawn at street level
      const s = Math.min(w / Math.max(x1 - x0, minSpan), h / Math.max(y1 - y0, minSpan)) * 0.8;
      this.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, s: Math.min(s, MAX_SCALE) };
    }
    this.userMoved = false;
    if (render) this.render();
  }

  zoom(factor, px = null, py = null) {
    if (!this.view) return;
    const [w, h] = this.size();
    const ax = px ?? w / 2;
    const ay = py ?? h / 2;
    const wx = this.view.cx + (ax - w / 2) / this.view.s;
    const wy = this.view.cy + (ay - h / 2) / this.view.s;
    const s = Math.max(64, Math.min(MAX_SCALE, this.view.s * factor));
    this.view = { s, cx: wx - (ax - w / 2) / s, cy: wy - (ay - h / 2) / s };
    this.userMoved = true;
    this.render();
  }

  _bindPointer() {
    let drag = null;
    this.svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = this.svg.getBoundingClientRect();
      this.zoom(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    this.svg.addEventListener("pointerdown", (e) => {
      if (e.target.closest(".inc")) return;
      drag = { x: e.clientX, y: e.clientY, cx: this.view?.cx, cy: this.view?.cy };
    });
    window.addEventListener("pointermove", (e) => {
      if (!drag || !this.view) return;
      this.view.cx = drag.cx - (e.clientX - drag.x) / this.view.s;
      this.view.cy = drag.cy - (e.clientY - drag.y) / this.view.s;
      this.userMoved = true;
      this.render();
    });
    window.addEventListener("pointerup", () => (drag = null));
  }

  project(lat, lon) {
    const [w, h] = this.size();
    const [x, y] = world(lat, lon);
    return [(x - this.view.cx) * this.view.s + w / 2, (y - this.view.cy) * this.view.s + h / 2];
  }

  pxPerKm(lat) {
    return (this.view.s * 1000) / (EARTH_M * Math.cos((lat * Math.PI) / 180));
  }

  render() {
    if (!this.view) return;
    const [w, h] = this.size();
    const root = this.svg;
    root.setAttribute("viewBox", `0 0 ${w} ${h}`);
    root.replaceChildren();
    root.append(svg("rect", { class: "map-bg", x: 0, y: 0, width: w, height: h }));
    if (this.tileUrl) root.append(this._tiles(w, h));
    root.append(this._grid(w, h));

    const layerCones = svg("g", { class: "cones" });
    const layerCams = svg("g", { class: "cams" });
    const layerInc = svg("g", { class: "incs" });
    const layerLabels = svg("g", { class: "labels" }); // on top: an incident at a camera must not hide its name
    root.append(layerCones, layerCams, layerInc, layerLabels);

    const selected = this.data.selected;
    let unplaced = 0;
    for (const c of this.data.cameras) {
      if (c.lat === null || c.lon === null) {
        unplaced += 1;
        continue;
      }
      const [x, y] = this.project(c.lat, c.lon);
      const key = `${c.edge_id}/${c.camera_id}`;
      const g = svg("g", { class: "cam", transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`, dataset: { key, state: c.state || "unknown" } });
      if (c.bearing_deg !== null && c.fov_deg !== null && c.fov_deg < 360) {
        g.append(svg("path", { class: "fov", d: wedge(0, 0, c.bearing_deg, c.fov_deg / 2, 26) }));
      }
      g.append(svg("circle", { class: "cam-dot", r: 6.5 }));
      layerLabels.append(svg("text", { class: "cam-label", x: (x + 10).toFixed(1), y: (y + 4).toFixed(1), dataset: { key, state: c.state || "unknown" } }, c.name || c.camera_id));
      g.append(svg("title", {}, `${c.name || key} (${key}) — ${t(`cam.${c.state || "unknown"}`)}${c.reason ? `: ${c.reason}` : ""}`));
      layerCams.append(g);
    }

    for (const inc of this.data.incidents) {
      const sightings = this.data.sightings.get(inc.id) || [];
      const coneFor = inc.hazard === "smoke" || inc.id === selected;
      if (coneFor) {
        for (const s of sightings) {
          const [x, y] = this.project(s.lat, s.lon);
          let km = 8;
          if (inc.location) km = Math.min(40, Math.max(1, 1.5 * haversineKm(s, inc.location)));
          const len = km * this.pxPerKm(s.lat);
          layerCones.append(svg("path", {
            class: `cone${inc.id === selected ? " sel" : ""}`,
            d: wedge(x, y, s.azimuth_deg, Math.max(s.half_width_deg, 0.75), len),
            dataset: { incident: inc.id, camera: s.camera },
          }));
        }
      }
      if (!inc.location) continue;
      const [x, y] = this.project(inc.location.lat, inc.location.lon);
      const g = svg("g", {
        class: `inc sev-${inc.severity} st-${inc.state}${inc.id === selected ? " sel" : ""}`,
        transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
        dataset: { id: inc.id, hazard: inc.hazard, state: inc.state },
        onclick: () => this.onSelect(inc.id),
      });
      if (inc.state === "open") g.append(svg("circle", { class: "pulse", r: 14 }));
      if (inc.location.estimated) g.append(svg("circle", { class: "est", r: 19 }));
      g.append(svg("circle", { class: "inc-dot", r: 12 }));
      const ic = icon(inc.hazard, "inc-icon");
      ic.setAttribute("x", -8);
      ic.setAttribute("y", -8);
      ic.setAttribute("width", 16);
      ic.setAttribute("height", 16);
      g.append(ic);
      g.append(svg("title", {}, `#${inc.id} ${t(`hazard.${inc.hazard}`)} — ${t(`state.${inc.state}`)}${inc.location.estimated ? ` (${t("map.estimated")})` : ""}`));
      layerInc.append(g);
    }

    root.append(this._scale(w, h), this._north(w));
    const notes = [];
    if (unplaced) notes.push(t("map.no_position", { n: unplaced }));
    notes.push(this.tileUrl ? this.tileAttribution : t("map.plain"));
    this.foot.textContent = notes.filter(Boolean).join(" ");
  }

  _tiles(w, h) {
    const g = svg("g", { class: "tiles" });
    const z = Math.max(0, Math.min(19, Math.round(Math.log2(this.view.s / 256))));
    const n = 2 ** z;
    const ts = this.view.s / n;
    const left = this.view.cx - w / 2 / this.view.s;
    const top = this.view.cy - h / 2 / this.view.s;
    const x0 = Math.floor(left * n);
    const y0 = Math.max(0, Math.floor(top * n));
    const x1 = Math.floor((left + w / this.view.s) * n);
    const y1 = Math.min(n - 1, Math.floor((top + h / this.view.s) * n));
    for (let ty = y0; ty <= y1; ty++) {
      for (let tx = x0; tx <= x1; tx++) {
        const wx = ((tx % n) + n) % n;
        const href = this.tileUrl.replace("{z}", z).replace("{x}", wx).replace("{y}", ty).replace("{s}", "a");
        g.append(svg("image", {
          href, x: ((tx / n - left) * this.view.s).toFixed(1), y: ((ty / n - top) * this.view.s).toFixed(1),
          width: ts + 0.5, height: ts + 0.5, preserveAspectRatio: "none",
        }));
      }
    }
    return g;
  }

  _grid(w, h) {
    // Faint lines every "nice" distance so the plain map still reads as distance.
    const g = svg("g", { class: "grid" });
    const lat = this._centreLat();
    const step = niceMetres((EARTH_M * Math.cos((lat * Math.PI) / 180) / this.view.s) * 120) / 1000; // km
    const px = step * this.pxPerKm(lat);
    if (px < 20) return g;
    const leftPx = this.view.cx * this.view.s - w / 2;
    const topPx = this.view.cy * this.view.s - h / 2;
    for (let x = (px - (leftPx % px)) % px; x < w; x += px) g.append(svg("line", { x1: x, y1: 0, x2: x, y2: h }));
    for (let y = (px - (topPx % px)) % px; y < h; y += px) g.append(svg("line", { x1: 0, y1: y, x2: w, y2: y }));
    return g;
  }

  _centreLat() {
    const y = this.view.cy;
    return (Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180) / Math.PI;
  }

  _scale(w, h) {
    const lat = this._centreLat();
    const mPerPx = (EARTH_M * Math.cos((lat * Math.PI) / 180)) / this.view.s;
    const m = niceMetres(mPerPx * 120);
    const len = m / mPerPx;
    const label = m >= 1000 ? `${m / 1000} km` : `${m} m`;
    return svg("g", { class: "scale", transform: `translate(16 ${h - 18})` },
      svg("path", { d: `M0 -6 V0 H${len.toFixed(1)} V-6` }),
      svg("text", { x: len / 2, y: -9 }, label));
  }

  _north(w) {
    return svg("g", { class: "north", transform: `translate(${w - 28} 34)` },
      svg("path", { d: "M0 -16 L7 6 L0 2 L-7 6 Z" }),
      svg("text", { x: 0, y: 20 }, "N"));
  }
}

/** SVG path of a circular sector at (x, y): azimuth clockwise from north, half-width, radius in px. */
export function wedge(x, y, azimuthDeg, halfDeg, r) {
  const pts = [];
  const steps = Math.max(2, Math.ceil(halfDeg / 3));
  for (let i = -steps; i <= steps; i++) {
    const a = ((azimuthDeg + (halfDeg * i) / steps) * Math.PI) / 180;
    pts.push(`${(x + r * Math.sin(a)).toFixed(1)} ${(y - r * Math.cos(a)).toFixed(1)}`);
  }
  return `M${x.toFixed(1)} ${y.toFixed(1)} L${pts.join(" L")} Z`;
}
