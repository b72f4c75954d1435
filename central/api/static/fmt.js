// Formatting: times in the site's time zone (Intl.DateTimeFormat), ages, and a tiny DOM builder.
import { t } from "./i18n.js";

let timeZone = "UTC";
const cache = new Map();

export function setTimeZone(tz) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    timeZone = tz;
  } catch {
    timeZone = "UTC"; // an unknown zone name: show UTC rather than the browser's own zone
  }
  cache.clear();
}

export function getTimeZone() {
  return timeZone;
}

function formatter(kind) {
  const key = `${timeZone}|${kind}`;
  if (!cache.has(key)) {
    const opts = { timeZone, hourCycle: "h23", hour: "2-digit", minute: "2-digit" };
    if (kind !== "short") opts.second = "2-digit";
    if (kind !== "clock") Object.assign(opts, { year: "numeric", month: "2-digit", day: "2-digit" });
    cache.set(key, new Intl.DateTimeFormat("en-US", opts));
  }
  return cache.get(key);
}

/** Unix seconds -> ISO-style text in the site's zone, the same in every language so no one mistakes
 * day and month: "full" 2026-12-02 14:25:46, "short" 2026-12-02 14:25, "clock" 14:25:46. */
export function time(unix, kind = "full") {
  if (unix === null || unix === undefined) return t("none");
  // A Date holds +-8.64e12 s; an edge's wrong clock stored before central bounded it must not throw here
  if (typeof unix !== "number" || !Number.isFinite(unix) || Math.abs(unix) > 8.64e12) return `? (${unix})`;
  const p = Object.fromEntries(formatter(kind).formatToParts(new Date(unix * 1000)).map((x) => [x.type, x.value]));
  const clock = kind === "short" ? `${p.hour}:${p.minute}` : `${p.hour}:${p.minute}:${p.second}`;
  return kind === "clock" ? clock : `${p.year}-${p.month}-${p.day} ${clock}`;
}

/** Seconds -> "42 s", "5 min", "1 h 59 min", "3 h", "2 d" (floored: never more than is left). */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("age.s", { n: s });
  if (s < 3600) return t("age.m", { n: Math.floor(s / 60) });
  if (s < 86400 * 2) {
    const m = Math.floor((s % 3600) / 60); // "1 h 59 min", never a bare "1 h" for a 2 h silence just made
    return m ? t("age.hm", { h: Math.floor(s / 3600), m }) : t("age.h", { n: Math.floor(s / 3600) });
  }
  return t("age.d", { n: Math.floor(s / 86400) });
}

export function ago(unix) {
  if (unix === null || unix === undefined) return t("none");
  return t("ago", { age: duration(Date.now() / 1000 - unix) });
}

/** el("div.cls#id", {attr: v, onclick: fn}, child, "text", ...) */
export function el(spec, attrs = {}, ...children) {
  const m = spec.match(/^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i);
  const node = document.createElement(m[1] || "div");
  for (const part of m[2].match(/[.#][\w-]+/g) || []) {
    if (part[0] === ".") node.classList.add(part.slice(1));
    else node.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVGNS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function icon(hazard, cls = "hz") {
  return svg("svg", { class: `${cls} hz-${hazard}`, viewBox: "0 0 24 24", "aria-hidden": "true" }, svg("use", { href: `#i-${hazard}` }));
}

export function coord(v) {
  return v === null || v === undefined ? t("none") : Number(v).toFixed(4);
}

/** Each cell of a table.grid under `root` gets its column's heading as data-label: on a phone the rows
 * become cards (app.css) and every value says what it is. */
export function labelCells(root) {
  for (const table of root.querySelectorAll("table.grid")) {
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    for (const row of table.querySelectorAll("tbody tr")) {
      [...row.children].forEach((td, i) => {
        if (heads[i]) td.dataset.label = heads[i];
      });
    }
  }
}
