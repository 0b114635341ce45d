// The REST API client: JSON in and out, the CSRF token on every request that changes
// something, errors as ApiError (with the field the server's message names), and a 401
// sends the user to the log-in page, remembering where they were.

const CSRF_KEY = 'sipbx.csrf';
const NEXT_KEY = 'sipbx.next';
export const API = '/api/v1';

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    // "no_answer.target: must be ..." -> field "no_answer.target"
    const m = /^([a-z_]+(?:\.[a-z_]+)*): /.exec(message || '');
    this.field = m ? m[1] : null;
  }
}

export function setCsrf(token) {
  if (token) sessionStorage.setItem(CSRF_KEY, token);
  else sessionStorage.removeItem(CSRF_KEY);
}

/** Where to go back to after logging in (the hash), taken once. */
export function takeNext() {
  const n = sessionStorage.getItem(NEXT_KEY);
  sessionStorage.removeItem(NEXT_KEY);
  return n && n.startsWith('#/') && !n.startsWith('#/login') ? n : '#/';
}

let unauthorizedHandler = null;
/** Called on any 401 from an authenticated request (the session ended). */
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

export function rememberAndLogin() {
  const here = location.hash || '#/';
  if (!here.startsWith('#/login')) sessionStorage.setItem(NEXT_KEY, here);
  if (unauthorizedHandler) unauthorizedHandler();
}

/**
 * Calls the API. path is under /api/v1 (e.g. "/users"); query an object of parameters
 * (empty values left out); body a JSON-able object, or raw a string sent as it is with
 * contentType (a CSV file). Resolves the parsed JSON (null for 204); rejects with
 * ApiError.
 */
export async function api(method, path, { body, raw, contentType, query, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (raw !== undefined) headers['Content-Type'] = contentType || 'text/plain; charset=utf-8';
  if (method !== 'GET' && method !== 'HEAD') {
    const t = sessionStorage.getItem(CSRF_KEY);
    if (t) headers['X-CSRF-Token'] = t;
  }
  let res;
  try {
    res = await fetch(url(path, query), {
      method, headers, signal, credentials: 'same-origin', cache: 'no-store',
      body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'sipbx cannot be reached (' + e.message + ')');
  }
  if (res.status === 204) return null;
  let data = null;
  const ct = res.headers.get('Content-Type') || '';
  if (ct.includes('json')) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    const e = data && data.error;
    const err = new ApiError(res.status, e ? e.code : 'http_' + res.status,
      e ? e.message : `${res.status} ${res.statusText || 'error'} from ${path}`);
    if (res.status === 429) err.retryAfter = Number(res.headers.get('Retry-After')) || 0;
    if (res.status === 401 && path !== '/session') rememberAndLogin();
    throw err;
  }
  if (data === null && !ct.includes('json')) data = await res.text();
  if (data && typeof data === 'object') {
    Object.defineProperty(data, '_date', { value: res.headers.get('Date'), enumerable: false });
  }
  return data;
}

/** "?a=1&b=x" of query's parameters (empty values left out), or "". */
export function queryString(query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const qs = q.toString();
  return qs ? '?' + qs : '';
}

/** The full URL of an API path with query parameters (for links: CSV, pcap). */
export function url(path, query) {
  return API + path + queryString(query);
}

/** Fetches every page of a list endpoint (up to max items). */
export async function listAll(path, query = {}, { signal, max = 10000 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api('GET', path, { query: { ...query, limit: 500, cursor }, signal });
    items.push(...(page.items || []));
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
