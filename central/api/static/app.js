// The duty officer's dashboard: live incident list, map, incident detail and actions, health, silences.
// Data: GET /api/v1/* once, then server-sent events (GET /api/v1/events: `incident` and `camera`).
import { api, ApiError, setUnauthorizedHandler } from "./api.js";
import { filesBlock, snapshotsBlock } from "./evidence.js";
import { DetailLabel } from "./detaillabel.js";
import { LabellingView } from "./labelling.js";
import { ago, coord, duration, el, icon, labelCells, setTimeZone, svg, time } from "./fmt.js";
import { applyStatic, getLang, setLang, t } from "./i18n.js";
import { MapView, placeText } from "./map.js";
import { ModelsView } from "./models.js";
import {
  againLine, blindStrip, closeConfirm, confidenceMeaning, confidenceText, isBlind, procedureBlock, rawScoresBlock,
  normalText, severityBlock, successorLines, suppressionRows, suppressionsBlock, suppressSelect, whyText,
} from "./response.js";

const HAZARDS = ["smoke", "fire", "waterlogging", "fallen_tree"];
const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };
const STATE_RANK = { open: 0, acknowledged: 1 };
const SEVERITY_RANK = { extreme: 0, severe: 1, moderate: 2, minor: 3 };
const ACTIONS = [
  // [action, API path, states it applies to]
  ["acknowledge", "acknowledge", ["open"]],
  ["resolve", "resolve", ["open", "acknowledged"]],
  ["false_alarm", "false-alarm", ["open", "acknowledged", "resolved"]],
  ["reopen", "reopen", ["resolved", "false_alarm"]],
];
const SILENCE_S = 2 * 3600;
const CONE_DETAILS_MAX = 30;
const LIST_PAGE = 100; // rows drawn at a time, more as the list scrolls: a burst of a thousand stays quick
const PAGE = 500; // incidents per API request when loading every active one
const ACTIVE_MAX = 5000;

const S = {
  me: null,
  incidents: new Map(),
  cameras: new Map(),
  edges: [],
  sightings: new Map(), // incident id -> [sightings], from full views
  detailVersion: new Map(), // incident id -> version the sightings came from
  selected: null,
  detail: null,
  files: null, // {id, items}: the evidence files (clips, full snapshots) of the incident in the detail
  view: "incidents",
  filter: localStorage.getItem("hw-filter") || "active",
  muted: localStorage.getItem("hw-muted") === "1",
  fresh: new Map(), // incident id -> time it arrived live
  listShown: LIST_PAGE,
  weather: false, // weather warnings on at central (GET /map): then the raised watch is polled
  cues: 0,
  events: null,
  started: false,
  flash: null,
  bannerId: null,
  suppressions: [], // active false-alarm suppressions
  supSettings: null, // false_alarm settings from central
  calibrated: [], // model names with a confidence calibration table
  confirmClose: ["severe", "extreme"], // severities whose closing needs a confirmation and a note
  confirming: null, // {id, action}: the close question on screen; kept when an update re-draws the panel
};

const $ = (sel) => document.querySelector(sel);
const canAct = () => S.me && ROLE_RANK[S.me.role] >= ROLE_RANK.operator;
const cameraName = (key) => S.cameras.get(key)?.name || key;
const active = (i) => i.state === "open" || i.state === "acknowledged";

let map;
let labelling;
let detailLabel;
let models;

// -- boot --------------------------------------------------------------------------------------------
async function boot() {
  applyStatic(document);
  bindChrome();
  setUnauthorizedHandler(showLogin);
  labelling = new LabellingView($("#view-labelling"), { cameraName, canAct });
  models = new ModelsView($("#view-models"));
  detailLabel = new DetailLabel({ isActive: () => S.view === "incidents" && canAct() && S.detail !== null,
    onSaved: (id) => S.selected === id && loadDetail(id) });
  map = new MapView($("#map"), $("#map-foot"), { onSelect: select });
  try {
    S.me = await api("/me", { quiet401: true });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showLogin();
    throw err;
  }
  await start();
}

function showLogin() {
  document.body.classList.remove("booting");
  document.body.classList.add("signed-out");
  if (S.events) S.events.close();
  S.events = null;
  $("#login").hidden = false;
  $("#token").focus();
}

async function login(ev) {
  ev.preventDefault();
  const msg = $("#login-msg");
  msg.textContent = "";
  unlockAudio();
  try {
    await api("/login", { method: "POST", body: { token: $("#token").value.trim() }, quiet401: true });
    S.me = await api("/me");
  } catch (err) {
    msg.textContent = err.status === 401 ? t("auth.bad") : t("error", { detail: err.detail || err.message });
    return;
  }
  $("#token").value = "";
  $("#login").hidden = true;
  document.body.classList.remove("signed-out");
  await start();
}

async function start() {
  setTimeZone(S.me.timezone || "UTC");
  document.body.classList.remove("booting", "signed-out");
  document.body.classList.toggle("can-act", canAct());
  $("#tab-labelling").hidden = !canAct(); // labels are an operator's decisions
  $("#tab-models").hidden = S.me.role !== "admin"; // registering and rolling out models is an admin's
  document.body.dataset.role = S.me.role;
  $("#site").textContent = S.me.site || "";
  renderWho();
  api("/map").then((cfg) => {
    map.configure(cfg);
    S.weather = cfg.weather;
    loadWatch();
  }).catch((err) => console.warn("map layers", err));
  await reloadAll();
  openEvents();
  tick();
  if (!S.started) {
    S.started = true;
    setInterval(tick, 1000);
    setInterval(() => loadEdges().catch(() => {}), 10000);
    setInterval(() => S.view === "silences" && loadSilences().catch(() => {}), 15000);
    setInterval(() => loadSuppressions().catch(() => {}), 15000);
    setInterval(loadWatch, 5000);
  }
  document.body.dataset.ready = "1";
}

/** Every incident matching `query`, page by page (all active ones must be on the map, not the first 300). */
async function loadAll(query) {
  const items = [];
  while (items.length < ACTIVE_MAX) {
    const page = await api(`/incidents?${query}&limit=${PAGE}&offset=${items.length}`);
    items.push(...page.items);
    if (page.items.length < PAGE || items.length >= page.total) break;
  }
  return items;
}

async function reloadAll() {
  const [open, acked, recent, cams] = await Promise.all([
    loadAll("state=open"), loadAll("state=acknowledged"), api("/incidents?limit=300"), api("/cameras")]);
  S.cameras = new Map(cams.items.map((c) => [`${c.edge_id}/${c.camera_id}`, c]));
  S.incidents = new Map([...recent.items, ...open, ...acked].map((i) => [i.id, i]));
  await Promise.all([loadEdges(), loadSuppressions()]);
  refreshConeDetails();
  renderAll();
  if (S.selected !== null) loadDetail(S.selected);
}

async function loadSuppressions() {
  const data = await api("/suppressions");
  S.suppressions = data.items;
  S.supSettings = data.settings;
  S.calibrated = data.calibrated_models || [];
  S.confirmClose = data.confirm_close || S.confirmClose;
  renderCounters();
  if (S.view === "silences") renderSuppressions();
}

async function liftSuppression(id) {
  const msg = $("#detail .action-msg");
  try {
    await api(`/suppressions/${id}`, { method: "DELETE" });
    if (msg) {
      msg.textContent = t("sup.lifted", { id });
      msg.className = "action-msg ok";
    }
  } catch (err) {
    if (msg) {
      msg.textContent = t("error", { detail: err.detail || err.message });
      msg.className = "action-msg error";
    }
  }
  await loadSuppressions();
  if (S.selected !== null) await loadDetail(S.selected);
}

function renderSuppressions() {
  const rows = suppressionRows(S.suppressions, { cameraName, canAct: canAct(), onLift: liftSuppression, select });
  $("#suppressions-table tbody").replaceChildren(...rows);
  labelCells($("#view-silences"));
  $("#suppressions-empty").hidden = rows.length > 0;
}

async function loadEdges() {
  const edges = await api("/edges");
  S.edges = edges.items;
  if (S.view === "health") renderHealth();
}

// -- live events ---------------------------------------------------------------------------------------
function openEvents() {
  if (S.events) S.events.close();
  const es = new EventSource("/api/v1/events");
  S.events = es;
  let wasLost = false;
  setLive("connecting");
  es.onopen = () => {
    setLive("live");
    if (wasLost) reloadAll().catch(() => {}); // catch up on whatever happened while disconnected
    wasLost = false;
  };
  es.onerror = () => {
    wasLost = true;
    setLive("lost");
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. 401 after the token was removed): check who we are, then retry.
      api("/me").then(() => setTimeout(openEvents, 2000)).catch(() => {});
    }
  };
  es.addEventListener("incident", (e) => upsertIncident(JSON.parse(e.data), true));
  es.addEventListener("camera", (e) => upsertCamera(JSON.parse(e.data)));
}

function setLive(state) {
  $("#live").dataset.state = state;
  $("#live-text").textContent = t(`live.${state}`);
}

function upsertIncident(row, live) {
  const prev = S.incidents.get(row.id);
  if (prev && prev.version === row.version && prev.updated_at === row.updated_at && prev.state === row.state) return;
  S.incidents.set(row.id, row);
  const isNew = !prev && row.state === "open";
  const reopened = prev && !active(prev) && row.state === "open";
  if (live && (isNew || reopened)) cue(row);
  if (row.id === S.selected) loadDetail(row.id);
  refreshConeDetails();
  scheduleRender();
}

function upsertCamera(row) {
  const key = `${row.edge_id}/${row.camera_id}`;
  const prev = S.cameras.get(key);
  if (prev && prev.updated_at === row.updated_at && prev.state === row.state) return; // a repeat
  S.cameras.set(key, row);
  scheduleRender();
}

// -- cues ----------------------------------------------------------------------------------------------
let audio = null;

function unlockAudio() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
  } catch {
    audio = null;
  }
}

function beep() {
  if (S.muted) return false;
  unlockAudio();
  if (!audio) return false;
  const now = audio.currentTime;
  for (const [i, f] of [880, 660, 880].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = f;
    const t0 = now + i * 0.18;
    gain.gain.setValueAtTime(0.0001, t0);
    gain.gain.exponentialRampToValueAtTime(0.25, t0 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.16);
    osc.connect(gain).connect(audio.destination);
    osc.start(t0);
    osc.stop(t0 + 0.17);
  }
  return true;
}

function cue(row) {
  S.cues += 1;
  S.fresh.set(row.id, Date.now());
  const sounded = beep();
  document.body.dataset.cues = String(S.cues);
  document.body.dataset.lastCueSound = sounded ? "1" : "0";
  S.bannerId = row.id;
  const banner = $("#banner");
  renderBanner();
  banner.hidden = false;
  banner.classList.remove("flash");
  void banner.offsetWidth; // restart the animation
  banner.classList.add("flash");
  clearTimeout(S.flash);
  S.flash = setTimeout(() => {
    banner.hidden = true;
    S.bannerId = null;
  }, 20000);
}

/** Re-rendered with the list: the camera's name may arrive (camera event) just after the incident. */
function renderBanner() {
  const row = S.incidents.get(S.bannerId);
  if (!row) return;
  const banner = $("#banner");
  const vars = { hazard: t(`hazard.${row.hazard}`), camera: cameraName(row.camera_keys[0] || ""), id: row.previous_id };
  banner.replaceChildren(
    icon(row.hazard),
    el("span", {}, t(row.previous_id ? "cue.again" : "cue.new", vars)),
    el("button.btn.small", { type: "button", onclick: () => select(row.id) }, `#${row.id}`),
  );
  banner.dataset.severity = row.severity;
}

function renderMute() {
  const b = $("#mute");
  b.replaceChildren(speaker(S.muted));
  b.title = t(S.muted ? "cue.unmute" : "cue.mute");
  b.setAttribute("aria-pressed", S.muted ? "true" : "false");
  b.classList.toggle("muted", S.muted);
}

function speaker(muted) {
  return svg("svg", { viewBox: "0 0 24 24", class: "spk", "aria-hidden": "true" },
    svg("path", { d: "M4 9h4l5-4v14l-5-4H4z" }),
    muted ? svg("path", { d: "M16 9l5 6M21 9l-5 6", class: "ln" }) : svg("path", { d: "M16 8.5a5 5 0 0 1 0 7M18.5 6a8.5 8.5 0 0 1 0 12", class: "ln" }));
}

// -- rendering -----------------------------------------------------------------------------------------
let renderPending = false;

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    renderAll();
  });
}

function renderAll() {
  renderCounters();
  renderBanner();
  renderList();
  renderMap();
  if (S.view === "health") renderHealth();
}

function renderWho() {
  if (!S.me) return;
  $("#who").replaceChildren(el("span.name", {}, S.me.name), el("span.role", { dataset: { role: S.me.role } }, t(`auth.role.${S.me.role}`)));
}

function renderCounters() {
  const all = [...S.incidents.values()];
  const open = all.filter((i) => i.state === "open").length;
  const ack = all.filter((i) => i.state === "acknowledged").length;
  const offline = [...S.cameras.values()].filter((c) => c.state === "offline").length;
  const sup = S.suppressions.length;
  const blind = [...S.cameras.values()].filter(isBlind).length;
  $("#counters").replaceChildren(
    el("span.count.c-open", { dataset: { n: open } }, t("counters.open", { n: open })),
    el("span.count.c-ack", { dataset: { n: ack } }, t("counters.ack", { n: ack })),
    el("span.count.c-offline", { dataset: { n: offline } }, t("counters.offline", { n: offline })),
    el("span.count.c-blind", { dataset: { n: blind } }, t("counters.blind", { n: blind })),
    ...(sup ? [el("button.count.c-suppressed", { type: "button", dataset: { n: sup }, onclick: () => showView("silences") },
      t("counters.suppressed", { n: sup }))] : []),
  );
  document.title = (open ? `(${open}) ` : "") + t("app.title");
}

function sortedIncidents() {
  const rows = [...S.incidents.values()].filter((i) =>
    S.filter === "all" ? true : S.filter === "active" ? active(i) : !active(i));
  rows.sort((a, b) =>
    (STATE_RANK[a.state] ?? 2) - (STATE_RANK[b.state] ?? 2)
    || SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity]
    || b.last_alert_at - a.last_alert_at
    || b.id - a.id);
  return rows;
}

function renderList() {
  const strip = blindStrip([...S.cameras.values()], { onClick: () => showView("health") });
  $("#blind-cams").hidden = !strip;
  $("#blind-cams").replaceChildren(...(strip || []));
  const list = $("#incidents");
  const rows = sortedIncidents();
  const now = Date.now();
  const shown = rows.slice(0, S.listShown);
  const more = rows.length - shown.length;
  list.replaceChildren(...shown.map((i) => {
    const freshAt = S.fresh.get(i.id);
    const fresh = freshAt && now - freshAt < 60000;
    const cams = i.camera_keys.map(cameraName);
    const camText = cams.length > 1 ? `${cams[0]} +${cams.length - 1}` : cams[0] || "";
    return el(`li.incident.sev-${i.severity}.st-${i.state}${fresh ? ".fresh" : ""}${i.id === S.selected ? ".selected" : ""}`,
      { dataset: { id: i.id, state: i.state, hazard: i.hazard }, tabindex: 0, onclick: () => select(i.id),
        onkeydown: (e) => e.key === "Enter" && select(i.id) },
      icon(i.hazard),
      el("div.main", {},
        el("div.line1", {},
          el("span.hazard", {}, t(`hazard.${i.hazard}`)),
          el("span.id", {}, `#${i.id}`),
          fresh ? el("span.new", {}, t("list.new")) : null,
          i.previous_id && active(i) ? el("span.again", {}, t("list.again", { id: i.previous_id })) : null,
          el("span.sev", {}, t(`severity.${i.severity}`))),
        el("div.line2", {},
          el("span.cam", { title: i.camera_keys.join(", ") }, camText),
          i.place && i.place.area ? el("span.area", {}, i.place.area) : null,
          i.camera_count > 1 ? el("span.ncams", {}, t("list.cameras", { n: i.camera_count })) : null, // one: its name says it
          i.camera_keys.some((k) => isBlind(S.cameras.get(k))) ? el("span.blind-badge", {}, t("list.blind_cam")) : null)),
      el("div.side", {},
        el("span.badge.state", { dataset: { state: i.state } }, t(`state.${i.state}`)),
        el("span.age", { dataset: { age: i.opened_at }, title: time(i.opened_at) }, ago(i.opened_at))));
  }), ...(more > 0 ? [moreRow(more)] : []));
  $("#incidents-empty").hidden = rows.length > 0;
}

let moreObserver = null;

/** The last row while some are not drawn: scrolling it into view (or clicking it) draws the next page. */
function moreRow(n) {
  const showMore = () => {
    S.listShown += LIST_PAGE;
    renderList();
  };
  moreObserver ||= new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && showMore(), { root: $("#incidents") });
  moreObserver.disconnect();
  const row = el("li.more", {}, el("button.btn.small", { type: "button", onclick: showMore }, t("list.more", { n })));
  moreObserver.observe(row);
  return row;
}

/** The incident's cameras whose model still learns their normal for its hazard: the officer reads their alerts
 * knowing they find fewer small plumes and may alarm on clouds they have not seen yet. */
function learningRows(v) {
  const learning = (v.camera_keys || []).map((k) => S.cameras.get(k))
    .filter((c) => c && c.normal && c.normal[v.hazard] && c.normal[v.hazard] !== "ready");
  if (!learning.length) return [];
  const names = learning.map((c) => c.name || c.camera_id).join(", ");
  return [el("dt", {}, t("detail.normal")), el("dd.normal-note", { title: t("normal.why") }, t("detail.normal_text", { cameras: names }))];
}

/** Cameras on raised watch and the warnings in force, while weather is on. */
function loadWatch() {
  if (!S.weather) return;
  api("/watch").then((w) => map.setWatch(w.items)).catch(() => map.setWatch([]));
  api("/warnings?state=active&limit=50").then((w) => map.setWarnings(w.items)).catch(() => map.setWarnings([]))
    .finally(renderLegend);
}

function renderMap() {
  const incs = [...S.incidents.values()].filter((i) => active(i) || i.id === S.selected);
  map.update({ cameras: [...S.cameras.values()], incidents: incs, sightings: S.sightings, selected: S.selected });
  renderLegend();
}

function renderLegend() {
  const legend = $("#legend");
  const warnings = map.warnings.legendKeys();
  const sig = `${getLang()}|${warnings.map((w) => w.text).join("|")}`;
  if (legend.childElementCount && legend.dataset.sig === sig) return;
  legend.dataset.sig = sig;
  legend.replaceChildren(...["online", "degraded", "offline", "unknown"].map((s) =>
    el("span.key", { dataset: { state: s } }, el("i"), t(`map.legend.${s}`))),
  el("span.key.cone-key", {}, el("i"), t("map.legend.cone")),
  el("span.key.watch-key", {}, el("i"), t("map.legend.watch")),
  ...warnings.map((w) => el("button.key.warn-key", { type: "button", dataset: { severity: w.severity }, title: t("map.show_warning"),
    onclick: () => map.showWarning(w.id) }, el("i"), w.text)));
}

/** Full views of active smoke incidents (and the selected one) carry the sightings drawn as cones. */
function refreshConeDetails() {
  const want = [...S.incidents.values()]
    .filter((i) => active(i) && i.hazard === "smoke" && i.camera_count > 0)
    .slice(0, CONE_DETAILS_MAX);
  for (const i of want) {
    if (S.detailVersion.get(i.id) === `${i.version}/${i.updated_at}`) continue;
    S.detailVersion.set(i.id, `${i.version}/${i.updated_at}`);
    api(`/incidents/${i.id}`).then((v) => {
      S.sightings.set(v.id, v.sightings || []);
      scheduleRender();
    }).catch(() => S.detailVersion.delete(i.id));
  }
}

// -- incident detail -----------------------------------------------------------------------------------
function select(id) {
  S.selected = id;
  if (S.view !== "incidents") showView("incidents");
  for (const li of document.querySelectorAll("#incidents li")) li.classList.toggle("selected", Number(li.dataset.id) === id);
  loadDetail(id);
  scheduleRender();
  document.body.classList.add("has-detail");
  // one column (phones, narrow windows): the detail comes first and is scrolled to, not opened below the fold
  if (matchMedia("(max-width: 1100px)").matches) $("#detail").scrollIntoView({ block: "start" });
}

let detailSeq = 0;

async function loadDetail(id) {
  const seq = ++detailSeq;
  const panel = $("#detail");
  if (!S.detail || S.detail.id !== id) panel.replaceChildren(el("p.empty", {}, t("detail.loading")));
  try {
    const [view, labelled] = await Promise.all([api(`/incidents/${id}`),
      api(`/incidents/${id}/labels`).catch(() => ({ labels: [], evidence_files: [] }))]);
    if (seq !== detailSeq) return;
    S.detail = view;
    S.files = { id, items: labelled.evidence_files, labels: labelled.labels };
    S.sightings.set(view.id, view.sightings || []);
    renderDetail();
    scheduleRender();
  } catch (err) {
    if (seq === detailSeq) panel.replaceChildren(el("p.error", {}, t("error", { detail: err.detail || err.message })));
  }
}

function renderDetail() {
  const v = S.detail;
  const panel = $("#detail");
  document.body.classList.toggle("has-detail", Boolean(v));
  if (!v) {
    panel.replaceChildren(el("p.empty", {}, t("detail.none")));
    return;
  }
  // what the officer has typed, chosen, opened or is typing in survives the re-draw that each update of
  // the incident causes (an officer typing a note when an alert arrives keeps typing into it, and the
  // keys never reach the labelling shortcuts)
  const note = panel.querySelector("textarea.note")?.value || "";
  const msg = panel.querySelector(".action-msg")?.textContent || "";
  const suppress = panel.querySelector("select.suppress")?.value;
  const kept = keptView(panel);
  let loc = t("detail.no_location");
  if (v.location) {
    loc = v.location.estimated
      ? t("detail.location_est", { lat: coord(v.location.lat), lon: coord(v.location.lon), n: v.sightings.length })
      : t("detail.location_cam", { lat: coord(v.location.lat), lon: coord(v.location.lon) });
  }
  const facts = el("dl.facts", {},
    el("dt", {}, t("detail.opened")), el("dd", {}, el("time", { dataset: { unix: v.opened_at } }, time(v.opened_at)), " · ", el("span.age", { dataset: { age: v.opened_at } }, ago(v.opened_at))),
    el("dt", {}, t("detail.last_alert")), el("dd", {}, time(v.last_alert_at)),
    el("dt", {}, t("detail.location")), el("dd", {}, loc),
    el("dt", {}, t("detail.where")), el("dd.where", {}, placeText(v.place)),
    el("dt", {}, t("detail.confidence")), el("dd.confidence", {}, el("strong", {}, confidenceText(v.confidence ?? v.score_max)),
      el("span.muted", {}, " · ", confidenceMeaning(v, S.calibrated))),
    el("dt", {}, t("detail.alerts_active")), el("dd", {}, String(v.alerts_active ?? 0)),
    ...learningRows(v),
  );
  const who = [];
  if (v.acknowledged_by) who.push(el("p.who-line", {}, t("detail.acknowledged_by", { who: v.acknowledged_by, at: time(v.acknowledged_at) })));
  if (v.resolved_by) who.push(el("p.who-line", {}, t("detail.resolved_by", { who: v.resolved_by, at: time(v.resolved_at) })));
  if (v.note) who.push(el("p.who-line", {}, `${t("detail.note_label")}: ${v.note}`));
  const again = againLine(v, select);
  if (again) who.unshift(again);
  else if (v.previous_id) who.push(el("p.who-line", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); select(v.previous_id); } }, t("detail.previous", { id: v.previous_id }))));
  who.unshift(...successorLines(v, select));

  panel.replaceChildren(
    el("div.detail-head", {},
      icon(v.hazard, "hz big"),
      el("div", {},
        el("h2", {}, `${t(`hazard.${v.hazard}`)} #${v.id}`),
        el("div.tags", {},
          el("span.badge.state", { dataset: { state: v.state } }, t(`state.${v.state}`)),
          el(`span.badge.sev.sev-${v.severity}`, {}, t(`severity.${v.severity}`)),
          el("span.badge", {}, v.camera_count === 1 ? t("list.camera") : t("list.cameras", { n: v.camera_count })))),
      el("button.icon-btn.close", { type: "button", title: "×", onclick: () => { S.selected = null; S.detail = null; renderDetail(); scheduleRender(); } }, "×")),
    facts,
    ...who,
    ...[severityBlock(v)].filter(Boolean),
    ...[procedureBlock(v, { canAct: canAct(), onTick: (pid, index, done) => tickStep(v.id, pid, index, done) })].filter(Boolean),
    actionsBlock(v, { note, msg, suppress }),
    ...[suppressionsBlock(v, { canAct: canAct(), cameraName, onLift: liftSuppression, settings: S.supSettings })].filter(Boolean),
    el("h3", {}, t("detail.evidence")),
    snapshotsBlock(v, { cameraName, confidenceText }),
    el("h3", {}, t("detail.clips")),
    filesBlock(S.files?.id === v.id ? S.files.items : null, { cameraName }),
    canAct() ? detailLabel.block(v, S.files?.id === v.id ? S.files.labels : []) : null,
    rawScoresBlock(v, cameraName),
    el("h3", {}, t("detail.cameras")),
    camerasBlock(v),
    el("h3", {}, t("detail.timeline")),
    timelineBlock(v),
  );
  restoreView(panel, kept);
}

const KEEP_FOCUS = ["textarea.note", "select.suppress"]; // the detail's fields an officer types or chooses in

/** Focus, caret, opened sections and scroll of the detail panel, read before a re-draw. */
function keptView(panel) {
  const active = document.activeElement;
  const focus = panel.contains(active) ? KEEP_FOCUS.find((sel) => active.matches(sel)) : undefined;
  return {
    focus,
    caret: focus && "selectionStart" in active && active.type === "textarea" ? [active.selectionStart, active.selectionEnd] : null,
    open: [...panel.querySelectorAll("details[open]")].map((d) => d.className),
    scroll: panel.scrollTop,
  };
}

function restoreView(panel, kept) {
  for (const d of panel.querySelectorAll("details")) if (kept.open.includes(d.className)) d.open = true;
  panel.scrollTop = kept.scroll;
  const node = kept.focus && panel.querySelector(kept.focus);
  if (!node) return;
  node.focus({ preventScroll: true });
  if (kept.caret) node.setSelectionRange(...kept.caret);
}

function actionsBlock(v, { note, msg, suppress }) {
  if (!canAct()) return el("p.viewer-note", {}, t("detail.viewer"));
  const open = ACTIONS.filter(([, , states]) => states.includes(v.state));
  const buttons = open.map(([action, path]) =>
    el(`button.btn.act-${action}`, { type: "button", dataset: { action }, onclick: () => act(v.id, action, path) }, t(`action.${action}`)));
  const silence = v.cameras.map((c) => {
    const key = `${c.edge_id}/${c.camera_id}`;
    return el("button.btn.ghost", { type: "button", dataset: { action: "silence", camera: key },
      onclick: () => silenceFromIncident(v, c) }, t("action.silence", { camera: c.name || key, hazard: t(`hazard.${v.hazard}`) }));
  });
  const area = el("textarea.note", { rows: 2, maxlength: 2000, placeholder: t("detail.note") });
  area.value = note;
  const slot = el("div.confirm-slot", {});
  const asked = S.confirming?.id === v.id && open.find(([a]) => a === S.confirming.action);
  if (asked && S.confirmClose.includes(v.severity)) askClose(slot, v, asked[0], asked[1]);
  else S.confirming = null;
  return el("div.actions", {},
    el("h3", {}, t("detail.actions")),
    area,
    el("div.buttons", {}, buttons),
    open.some(([a]) => a === "false_alarm") ? suppressSelect(Number(suppress ?? S.supSettings?.suppress_s ?? 7200)) : null,
    el("div.buttons.silence", {}, silence),
    slot,
    el("p.action-msg", {}, msg));
}

async function tickStep(id, procedureId, index, done) {
  const msg = $("#detail .action-msg");
  try {
    await api(`/incidents/${id}/steps`, { method: "POST", body: { procedure_id: procedureId, index, done } });
  } catch (err) {
    if (msg) {
      msg.textContent = t("error", { detail: err.detail || err.message });
      msg.className = "action-msg error";
    }
  }
  await loadDetail(id);
}

/** Closing a severe or extreme incident: say what is left and ask again, with a note. */
function askClose(slot, v, action, path) {
  S.confirming = { id: v.id, action };
  slot.replaceChildren(closeConfirm(v, action, {
    onConfirm: () => act(v.id, action, path, true),
    onCancel: () => { S.confirming = null; slot.replaceChildren(); },
  }));
}

async function act(id, action, path, confirmed = false) {
  const panel = $("#detail");
  const note = panel.querySelector("textarea.note").value.trim();
  const msg = panel.querySelector(".action-msg");
  const slot = panel.querySelector(".confirm-slot");
  const v = S.detail;
  const closing = (action === "resolve" || action === "false_alarm") && v && S.confirmClose.includes(v.severity);
  if (action === "false_alarm" && !note) {
    msg.textContent = t("action.need_note");
    msg.className = "action-msg error";
    panel.querySelector("textarea.note").focus();
    return;
  }
  if (closing && !confirmed) {
    askClose(slot, v, action, path);
    panel.querySelector("textarea.note").focus();
    return;
  }
  if (closing && !note) {
    msg.textContent = t("close.need_note", { severity: t(`severity.${v.severity}`) });
    msg.className = "action-msg error";
    panel.querySelector("textarea.note").focus();
    return;
  }
  S.confirming = null;
  slot.replaceChildren();
  for (const b of panel.querySelectorAll("button[data-action]")) b.disabled = true;
  try {
    const body = { note };
    const sup = panel.querySelector("select.suppress");
    if (action === "false_alarm" && sup) body.suppress_s = Number(sup.value);
    const view = await api(`/incidents/${id}/${path}`, { method: "POST", body });
    const { cameras, sightings, evidence, site, ...summary } = view; // eslint-disable-line no-unused-vars
    S.incidents.set(id, { ...S.incidents.get(id), ...summary });
    panel.querySelector("textarea.note").value = "";
    msg.textContent = t("action.done", { action: t(`action.${action}`) });
    msg.className = "action-msg ok";
    await Promise.all([loadDetail(id), loadSuppressions()]);
    scheduleRender();
  } catch (err) {
    msg.textContent = t("error", { detail: err.detail || err.message });
    msg.className = "action-msg error";
    for (const b of panel.querySelectorAll("button[data-action]")) b.disabled = false;
  }
}

async function silenceFromIncident(v, cam) {
  const panel = $("#detail");
  const msg = panel.querySelector(".action-msg");
  const note = panel.querySelector("textarea.note").value.trim();
  const key = `${cam.edge_id}/${cam.camera_id}`;
  try {
    const s = await api("/silences", {
      method: "POST",
      body: { edge_id: cam.edge_id, camera_id: cam.camera_id, hazard: v.hazard, duration_s: SILENCE_S,
        comment: note || `incident #${v.id}` },
    });
    msg.textContent = t("action.silenced", { camera: cam.name || key, hazard: t(`hazard.${v.hazard}`), until: time(s.ends_at) });
    msg.className = "action-msg ok";
  } catch (err) {
    msg.textContent = t("error", { detail: err.detail || err.message });
    msg.className = "action-msg error";
  }
}

function camerasBlock(v) {
  return el("ul.cam-list", {}, v.cameras.map((c) => {
    const key = `${c.edge_id}/${c.camera_id}`;
    const live = S.cameras.get(key);
    const state = live?.state || c.state || "unknown";
    return el("li", { dataset: { key } },
      el("span.dot", { dataset: { state } }),
      el("span.cam-name", {}, c.name || key),
      el("span.muted", {}, key),
      el("span.badge", { dataset: { state } }, t(`cam.${state}`)),
      c.bearing_deg !== null ? el("span.muted", {}, `${Math.round(c.bearing_deg)}° / ${Math.round(c.fov_deg)}°`) : null);
  }));
}

function timelineBlock(v) {
  const rows = [...(v.timeline || [])].reverse();
  return el("ol.timeline", {}, rows.map((ev) => el(`li.tl-${ev.kind}`, {},
    el("time", {}, time(ev.at, "full")),
    el("span", {}, timelineText(ev)),
    ev.detail && ev.detail.note ? el("q", {}, ev.detail.note) : null)));
}

function timelineText(ev) {
  const d = ev.detail || {};
  const vars = {
    actor: ev.actor === "system" ? "" : (ev.kind === "alert" ? cameraName(ev.actor) : ev.actor),
    state: d.state ? t(`alert.${d.state}`) : "",
    score: confidenceText(d.confidence ?? d.score),
    receivers: (d.receivers || []).join(", "),
    msg_type: d.msg_type ? t(`msg.${d.msg_type}`) : "",
    reason: d.reason || "",
    quiet: d.quiet_s ? Math.round(d.quiet_s / 60) : "",
    previous: d.previous_id,
    new_id: d.new_id,
    sup: d.suppressed_by ?? d.suppression_id,
    until: d.suppress_until ? time(d.suppress_until, "short") : "",
    silence: d.silence_id,
    by: d.by || "",
    comment: d.comment || "",
    states: (d.inhibit_states || []).map((x) => t(`cam.${x}`)).join("/"),
    n: d.index !== undefined ? d.index + 1 : "",
    verdict: d.verdict ? t(`lab.verdict.${d.verdict}`) : "",
    text: (getLang() === "zh" && d.text_zh) || d.text || "",
  };
  let key = `tl.${ev.kind}`;
  if (ev.kind === "opened" && d.previous_id && d.reason) key = "tl.opened_again";
  if (ev.kind === "alert") key = d.suppressed_by ? "tl.alert_quiet" : "tl.alert_conf";
  if (ev.kind === "notified" && !(d.receivers || []).length) key = "tl.not_notified"; // older rows
  if (ev.kind === "suppressed" && d.silence_id) key = "tl.suppressed_silence";
  if (ev.kind === "suppressed" && d.inhibit_states) key = "tl.suppressed_inhibit";
  if (ev.kind === "step" && !d.done) key = "tl.step_undone";
  if (ev.kind === "false_alarm" && d.suppress_until) key = "tl.false_alarm_sup";
  const text = t(key, vars);
  return text === key ? `${ev.kind} ${ev.actor}` : text;
}

// -- health -------------------------------------------------------------------------------------------
function renderHealth() {
  const cams = [...S.cameras.values()];
  const counts = { online: 0, degraded: 0, offline: 0, unknown: 0 };
  for (const c of cams) counts[c.state in counts ? c.state : "unknown"] += 1;
  $("#camera-summary").textContent = t("health.summary", counts);
  const blind = cams.filter(isBlind);
  $("#blind-summary").hidden = !blind.length;
  $("#blind-summary").textContent = blind.length ? t("health.blind", { n: blind.length,
    names: blind.map((c) => `${c.name || c.camera_id} (${whyText(c) || t("diag.offline")})`).join(", ") }) : "";
  const order = { offline: 0, degraded: 1, unknown: 2, online: 3 };
  cams.sort((a, b) => (order[a.state] ?? 2) - (order[b.state] ?? 2) || `${a.edge_id}/${a.camera_id}`.localeCompare(`${b.edge_id}/${b.camera_id}`));
  $("#cameras-table tbody").replaceChildren(...cams.map((c) => {
    const key = `${c.edge_id}/${c.camera_id}`;
    const ownWords = getLang() === "en" && c.reason && c.reason !== whyText(c);
    return el("tr", { dataset: { key, state: c.state } },
      el("td", {}, el("strong", {}, c.name || c.camera_id), el("span.muted", {}, ` ${key}`)),
      el("td", {}, el("span.badge", { dataset: { state: c.state } }, t(`cam.${c.state}`))),
      el("td", { title: c.reason || "" }, isBlind(c) ? el("strong.blind-why", {}, whyText(c)) : whyText(c),
        // the edge's own words (English) add detail on the English page; the Chinese page keeps them in the tooltip
        ownWords ? el("span.muted", {}, ` · ${c.reason}`) : null,
        normalText(c) ? el("span.normal-note", { title: t("normal.why") }, `${whyText(c) || ownWords ? " · " : ""}${normalText(c)}`) : null),
      el("td", {}, c.since ? [time(c.since, "short"), " · ", el("span.age", { dataset: { age: c.since } }, ago(c.since))] : t("none")),
      el("td", {}, lastFrameCell(c)),
      el("td.mono", {}, c.lat !== null ? `${coord(c.lat)}, ${coord(c.lon)}${c.bearing_deg !== null ? ` · ${Math.round(c.bearing_deg)}°/${Math.round(c.fov_deg)}°` : ""}` : t("none")));
  }));
  const ec = { online: 0, offline: 0 };
  for (const e of S.edges) ec[e.state === "online" ? "online" : "offline"] += 1;
  $("#edge-summary").textContent = t("health.edge_summary", ec);
  $("#edges-table tbody").replaceChildren(...S.edges.map((e) => {
    const hb = e.heartbeat || {};
    const models = Object.entries(hb.models || {});
    return el("tr", { dataset: { edge: e.edge_id, state: e.state } },
      el("td", {}, el("strong", {}, e.edge_id)),
      el("td", {}, el("span.badge", { dataset: { state: e.state } }, t(`edge.${e.state}`) || e.state)),
      el("td", {}, e.since ? [time(e.since, "short"), " · ", el("span.age", { dataset: { age: e.since } }, ago(e.since))] : t("none")),
      el("td", {}, e.last_seen ? el("span.age", { dataset: { age: e.last_seen } }, ago(e.last_seen)) : t("none")),
      el("td", {}, hb.cameras_total !== undefined ? `${hb.cameras_online} / ${hb.cameras_total}` : t("none")),
      el("td", {}, hb.outbox_depth !== undefined ? String(hb.outbox_depth) : t("none")),
      el("td", {}, models.length ? models.map(([n, ver]) => el("span.model", {}, `${n} ${ver}`)) : t("none")));
  }));
  labelCells($("#view-health"));
}

/** An online camera is delivering frames (its edge would report it degraded or offline within
 * offline_after_s otherwise), and the edge's heartbeat says the edge is alive now; the status message's
 * frame time is only the last frame before a change, so it is shown for cameras that are not online. */
function lastFrameCell(c) {
  const edge = S.edges.find((e) => e.edge_id === c.edge_id);
  if (c.state === "online" && edge && edge.state === "online" && edge.last_seen) {
    return el("span.receiving", {}, t("health.receiving", { ago: ago(edge.last_seen) }));
  }
  return c.last_frame_at ? el("span.age", { dataset: { age: c.last_frame_at } }, ago(c.last_frame_at)) : t("none");
}

// -- silences -----------------------------------------------------------------------------------------
async function loadSilences() {
  const expired = $("#silences-expired").checked;
  const data = await api(`/silences${expired ? "?include_expired=true" : ""}`);
  const now = Date.now() / 1000;
  const rows = data.items;
  $("#silences-table tbody").replaceChildren(...rows.map((s) => {
    const over = s.ends_at <= now;
    const parts = [];
    parts.push(s.camera_id ? cameraName(`${s.edge_id}/${s.camera_id}`) : s.edge_id ? `${s.edge_id}/*` : t("silences.all_cameras"));
    parts.push(s.hazard ? t(`hazard.${s.hazard}`) : t("silences.all_hazards"));
    if (s.area) parts.push(t("silences.area", { r: s.area.radius_km, lat: coord(s.area.lat), lon: coord(s.area.lon) }));
    return el(`tr${over ? ".expired" : ""}`, { dataset: { id: s.id } },
      el("td", {}, String(s.id)),
      el("td", {}, parts.join(" · ")),
      el("td", {}, time(s.starts_at, "short")),
      el("td", {}, over ? `${time(s.ends_at, "short")} (${t("silences.expired")})` : [time(s.ends_at, "short"), " · ", duration(s.ends_at - now)]),
      el("td", {}, s.created_by),
      el("td", {}, s.comment),
      el("td", {}, canAct() && !over
        ? el("button.btn.small.ghost", { type: "button", dataset: { action: "expire" }, onclick: () => expireSilence(s.id) }, t("silences.expire"))
        : null));
  }));
  $("#silences-empty").hidden = rows.length > 0;
  renderSuppressions();
  fillSilenceForm();
}

function fillSilenceForm() {
  const form = $("#silence-form");
  form.hidden = !canAct();
  if (!canAct()) return;
  const camSel = form.elements.camera;
  const current = camSel.value;
  camSel.replaceChildren(el("option", { value: "" }, t("silences.all_cameras")),
    ...[...S.cameras.values()].map((c) => el("option", { value: `${c.edge_id}/${c.camera_id}` }, `${c.name || c.camera_id} (${c.edge_id}/${c.camera_id})`)));
  camSel.value = current;
  const hzSel = form.elements.hazard;
  const hz = hzSel.value;
  hzSel.replaceChildren(el("option", { value: "" }, t("silences.all_hazards")), ...HAZARDS.map((h) => el("option", { value: h }, t(`hazard.${h}`))));
  hzSel.value = hz;
}

async function createSilence(ev) {
  ev.preventDefault();
  const form = ev.target;
  const msg = $("#silence-msg");
  const [edge, camera] = form.elements.camera.value ? form.elements.camera.value.split("/") : [null, null];
  const body = { duration_s: Math.round(Number(form.elements.hours.value) * 3600), comment: form.elements.comment.value.trim() };
  if (edge) Object.assign(body, { edge_id: edge, camera_id: camera });
  if (form.elements.hazard.value) body.hazard = form.elements.hazard.value;
  try {
    const s = await api("/silences", { method: "POST", body });
    msg.textContent = t("silences.created", { id: s.id });
    msg.className = "form-msg ok";
    form.elements.comment.value = "";
    await loadSilences();
  } catch (err) {
    msg.textContent = t("error", { detail: err.detail || err.message });
    msg.className = "form-msg error";
  }
}

async function expireSilence(id) {
  try {
    await api(`/silences/${id}`, { method: "DELETE" });
  } catch (err) {
    $("#silence-msg").textContent = t("error", { detail: err.detail || err.message });
  }
  await loadSilences();
}

// -- chrome ---------------------------------------------------------------------------------------------
function showView(name) {
  const again = S.view === name; // a tab clicked (or Enter on it) while open keeps the view's state
  S.view = name;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === name);
  for (const v of document.querySelectorAll(".view")) v.classList.toggle("active", v.id === `view-${name}`);
  document.body.dataset.view = name;
  if (name === "health") {
    renderHealth();
    loadEdges().catch(() => {});
  }
  if (name === "silences") loadSilences().catch(() => {});
  if (name !== "labelling") labelling.close();
  else if (!again) labelling.open();
  if (name === "models" && !again) models.open();
  if (name === "incidents") map.render();
}

function tick() {
  $("#clock").textContent = time(Date.now() / 1000, "clock");
  for (const n of document.querySelectorAll("[data-age]")) n.textContent = ago(Number(n.dataset.age));
  const now = Date.now();
  for (const [id, at] of S.fresh) {
    if (now - at > 60000) {
      S.fresh.delete(id);
      scheduleRender();
    }
  }
}

function relabel() {
  applyStatic(document);
  renderMute();
  renderWho();
  if (S.me) {
    renderAll();
    renderDetail();
    if (S.view === "silences") loadSilences().catch(() => {});
    setLive($("#live").dataset.state);
  }
  $("#clock").textContent = time(Date.now() / 1000, "clock");
}

function bindChrome() {
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  $("#filter").value = S.filter;
  $("#filter").addEventListener("change", (e) => {
    S.filter = e.target.value;
    S.listShown = LIST_PAGE;
    localStorage.setItem("hw-filter", S.filter);
    renderList();
  });
  $("#mute").addEventListener("click", () => {
    S.muted = !S.muted;
    localStorage.setItem("hw-muted", S.muted ? "1" : "0");
    if (!S.muted) unlockAudio();
    renderMute();
  });
  const toggleLang = () => {
    setLang(getLang() === "zh" ? "en" : "zh");
    relabel();
  };
  $("#lang").addEventListener("click", toggleLang);
  $("#login-lang").addEventListener("click", toggleLang);
  $("#login-form").addEventListener("submit", login);
  $("#silence-form").addEventListener("submit", createSilence);
  $("#silences-expired").addEventListener("change", () => loadSilences().catch(() => {}));
  $("#zoom-in").addEventListener("click", () => map.zoom(1.5));
  $("#zoom-out").addEventListener("click", () => map.zoom(1 / 1.5));
  $("#zoom-fit").addEventListener("click", () => map.fit());
  document.addEventListener("pointerdown", unlockAudio, { once: true }); // browsers start audio only after a gesture
  document.addEventListener("keydown", (e) => {
    const zoomed = document.querySelector(".snap.zoomed");
    if (e.key === "Escape" && zoomed) {
      zoomed.classList.remove("zoomed"); // an enlarged picture closes first, then the detail
      return;
    }
    if (e.key === "Escape" && S.selected !== null) {
      S.selected = null;
      S.detail = null;
      renderDetail();
      scheduleRender();
    }
  });
  renderMute();
  $("#clock").textContent = time(Date.now() / 1000, "clock");
}

boot().catch((err) => {
  document.body.classList.remove("booting");
  document.body.append(el("p.fatal", {}, t("error", { detail: err.message })));
});
