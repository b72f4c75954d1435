// The central REST API (same origin; the hw_token cookie set by POST /api/v1/login authenticates).

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function api(path, { method = "GET", body, quiet401 = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(`/api/v1${path}`, init);
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const detail = (data && data.detail) || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401 && !quiet401) onUnauthorized();
    throw new ApiError(resp.status, detail);
  }
  return data;
}

export function evidenceSrc(item) {
  // Evidence URLs carry central's public base; the page asks its own origin for the same id.
  return `/api/v1/evidence/${encodeURIComponent(item.id)}.jpg`;
}
