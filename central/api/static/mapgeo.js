// Geometry and words for the map: great-circle steps, view wedges and sectors, an incident's place.
import { t } from "./i18n.js";

const EARTH_RADIUS_M = 6371008.8;

/** The point `m` metres from (lat, lon) along `bearingDeg` (great circle). */
function destination(lat, lon, bearingDeg, m) {
  const rad = Math.PI / 180;
  const d = m / EARTH_RADIUS_M;
  const b = bearingDeg * rad;
  const p1 = lat * rad;
  const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
  const l2 = lon * rad + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1), Math.cos(d) - Math.sin(p1) * Math.sin(p2));
  return [p2 / rad, ((l2 / rad + 540) % 360) - 180];
}

export function haversineKm(a, b) {
  const rad = Math.PI / 180;
  const h = Math.sin(((b.lat - a.lat) * rad) / 2) ** 2
    + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(((b.lon - a.lon) * rad) / 2) ** 2;
  return 12742 * Math.asin(Math.min(1, Math.sqrt(h)));
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

/** A geographic sector (lat/lon ring) for a line of sight: `km` long, `halfDeg` either side. */
export function sector(lat, lon, azimuthDeg, halfDeg, km) {
  const ring = [[lat, lon]];
  const steps = Math.max(2, Math.ceil(halfDeg / 2));
  for (let i = -steps; i <= steps; i++) ring.push(destination(lat, lon, azimuthDeg + (halfDeg * i) / steps, km * 1000));
  return ring;
}

function metres(m) {
  return m >= 1000 ? `${(m / 1000).toFixed(m >= 10000 ? 0 : 1)} km` : `${Math.round(m)} m`;
}

/** An incident's place in words: its named area, and the stretch along one camera's view. */
export function placeText(place) {
  if (!place) return t("none");
  const parts = [];
  if ("area" in place) parts.push(place.area || t("place.no_area")); // no key: no areas are configured
  if (place.range_m) {
    parts.push(t("place.range", { near: metres(place.range_m[0]), far: metres(place.range_m[1]), bearing: Math.round(place.bearing_deg) }));
  }
  return parts.join(" · ") || t("none");
}
