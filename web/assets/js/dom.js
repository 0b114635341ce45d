// DOM building and formatting. Every piece of data becomes a text node or an attribute
// value: nothing here parses markup, so SIP-derived text (display names, user agents,
// whole messages) can never turn into elements or scripts.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' && 'checked' in el) el.checked = !!v;
    else if (k === 'style') throw new Error('use classes, not style attributes (CSP)');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Creates an HTML element: h('a', {href: '#/x', class: 'btn'}, 'text', child, ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Creates an SVG element the same way. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replaces el's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- formatting: times in the browser's zone ----

const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const tf = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const hf = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

function toDate(t) {
  if (t === null || t === undefined || t === 0 || t === '') return null;
  if (typeof t === 'number') return new Date(t > 1e14 ? t / 1000 : t > 1e11 ? t : t * 1000);
  const d = new Date(t);
  return isNaN(d) ? null : d;
}

/** A time (RFC 3339 string, or a number of s/ms/us since the epoch) as local date and time. */
export function fmtTime(t, fallback = '—') {
  const d = toDate(t);
  return d ? dtf.format(d) : fallback;
}

/** Only the local clock time. */
export function fmtClock(t, fallback = '—') {
  const d = toDate(t);
  return d ? tf.format(d) : fallback;
}

export function fmtHour(t) {
  const d = toDate(t);
  return d ? hf.format(d) : '';
}

const df = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
/** The day of a time as "Nov 3" (UTC: daily buckets of the API start at midnight UTC). */
export function fmtDay(t) {
  const d = toDate(t);
  return d ? df.format(d) : '';
}

/** Seconds as m:ss or h:mm:ss. */
export function fmtDuration(sec) {
  if (sec === null || sec === undefined || isNaN(sec)) return '—';
  sec = Math.max(0, Math.floor(sec));
  const h2 = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), r = sec % 60;
  const pad = (n) => String(n).padStart(2, '0');
  return h2 ? `${h2}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
}

/** "in 5 min", "2 h ago": for expiries and last-used times. */
export function fmtRelative(t) {
  const d = toDate(t);
  if (!d) return 'never';
  const diff = (d.getTime() - Date.now()) / 1000, a = Math.abs(diff);
  const v = a < 60 ? `${Math.round(a)} s` : a < 3600 ? `${Math.round(a / 60)} min`
    : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return diff >= 0 ? `in ${v}` : `${v} ago`;
}

/** A Date as the API reads times: RFC 3339 in UTC, whole seconds. */
export function fmtIso(d) {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

// ---- small widgets ----

let toastTimer = 0;
/** A short confirmation at the bottom of the screen (errors go next to their cause). */
export function toast(msg) {
  const el = document.getElementById('toast');
  el.textContent = msg;
  el.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), 2500);
}

/** An error box for a section: the API's message, and a retry button when given. */
export function errorBox(err, retry) {
  return h('div', { class: 'error', role: 'alert' },
    h('strong', null, err.status ? `Error ${err.status}: ` : 'Error: '),
    err.message || String(err),
    retry ? [' ', h('button', { type: 'button', class: 'link', onclick: retry }, 'Try again')] : null);
}

/** Shows err in box with errorBox (nothing when the request was aborted: the page is gone). */
export function showError(box, err, retry) {
  if (err.name !== 'AbortError') fill(box, errorBox(err, retry));
}

// ---- form errors: next to their field, described by it for screen readers ----

/** Marks one field invalid with message (client-side validation). */
export function fieldError(input, message) {
  const msg = h('p', { class: 'field-error', role: 'alert', id: 'err-' + Math.random().toString(36).slice(2) }, message);
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', msg.id);
  (input.closest('.field') || input.parentElement).append(msg);
}

/** Takes back fieldError(input). */
export function clearFieldError(input) {
  (input.closest('.field') || input.parentElement).querySelectorAll('.field-error').forEach((e) => e.remove());
  input.removeAttribute('aria-invalid');
  input.removeAttribute('aria-describedby');
}

export function clearFormErrors(form) {
  form.querySelectorAll('[aria-invalid]').forEach(clearFieldError);
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
}

/** Shows an ApiError at a form: the message next to the field it names, else at the form. */
export function showFormError(form, err) {
  clearFormErrors(form);
  const target = err.field ? form.querySelector(`[name="${CSS.escape(err.field)}"]`) : null;
  if (!target) {
    (form.querySelector('.form-error-slot') || form).append(h('p', { class: 'field-error form-level', role: 'alert' }, err.message));
    return;
  }
  // next to its field the field's name is redundant: "busy.target: no such ..." -> "No such ..."
  let text = err.message;
  if (text.startsWith(err.field + ': ')) {
    text = text.slice(err.field.length + 2);
    text = text.charAt(0).toUpperCase() + text.slice(1);
  }
  fieldError(target, text);
  target.focus();
}

/** A read-only value with a Copy button (works without the Clipboard API on plain http). */
export function copyField(value, label) {
  const input = h('input', { type: 'text', readonly: true, value, class: 'mono copy-input', 'aria-label': label || 'value' });
  const btn = h('button', { type: 'button', class: 'btn small' }, 'Copy');
  btn.addEventListener('click', async () => {
    input.select();
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(value); ok = true; }
    } catch { /* fall back below */ }
    if (!ok) { try { ok = document.execCommand('copy'); } catch { ok = false; } }
    btn.textContent = ok ? 'Copied' : 'Press Ctrl+C';
    setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
  });
  input.addEventListener('focus', () => input.select());
  return h('span', { class: 'copy' }, input, btn);
}

/** A modal confirmation (native <dialog>: focus trap and Escape for free). Resolves true/false. */
export function confirmDialog(title, message, okLabel = 'Delete') {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'submit', class: 'btn danger', value: 'ok' }, okLabel);
    const cancel = h('button', { type: 'submit', class: 'btn', value: 'cancel', formnovalidate: true }, 'Cancel');
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'dlg-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'dlg-title' }, title),
        h('p', null, message),
        h('div', { class: 'actions' }, cancel, ok)));
    dlg.addEventListener('close', () => { resolve(dlg.returnValue === 'ok'); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** A status badge for call states and dispositions. */
export function badge(text, kind) {
  return h('span', { class: ['badge', `b-${String(kind || text).toLowerCase().replace(/[^a-z0-9]+/g, '-')}`] }, text);
}

/** Text that may be long (a name, a user agent, a contact): one line, cut with an
 *  ellipsis by CSS, the whole of it in the tooltip. tag and cls as for h(). */
export function cut(text, { tag = 'span', cls = null, inline = false } = {}) {
  const t = text === null || text === undefined ? '' : String(text);
  return h(tag, { class: [inline ? 'cut-inline' : 'cut', cls], title: t || null }, t);
}

/** The number of characters of s as sipbx counts them (code points, not UTF-16 units). */
export function charCount(s) {
  let n = 0;
  for (const _ of s) n++; // eslint-disable-line no-unused-vars
  return n;
}

/** The longest display name sipbx takes, in characters (server/store/store.h). */
export const DISPLAY_NAME_MAX = 127;

/** A display name input with a live count of its characters and the limit said before
 *  saving (no maxlength: a browser would cut a pasted name silently). check() marks it
 *  invalid and returns false when it is too long. */
export function displayNameInput(id, value = '', attrs = {}) {
  const hintId = id + '-count';
  const input = h('input', { id, name: 'display_name', autocomplete: 'off', value, 'aria-describedby': hintId, ...attrs });
  const counter = h('span', { class: 'counter', id: hintId, 'aria-live': 'polite' });
  const update = () => {
    const n = charCount(input.value.trim());
    counter.textContent = `${n} of ${DISPLAY_NAME_MAX} characters`;
    counter.classList.toggle('over', n > DISPLAY_NAME_MAX);
  };
  input.addEventListener('input', update);
  update();
  const check = () => {
    const n = charCount(input.value.trim());
    if (n <= DISPLAY_NAME_MAX) return true;
    fieldError(input, `At most ${DISPLAY_NAME_MAX} characters: this name has ${n}.`);
    input.setAttribute('aria-describedby', `${hintId} ${input.getAttribute('aria-describedby')}`);
    input.focus();
    return false;
  };
  return { input, counter, check };
}

/** Offers text (or a Blob) as a file download named name. */
export function download(name, type, data) {
  const blob = data instanceof Blob ? data : new Blob([data], { type });
  const href = URL.createObjectURL(blob);
  const a = h('a', { href, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}

/** A CSV field (RFC 4180), with a leading = + - @ defused by an apostrophe so that a
 *  spreadsheet shows the text rather than running it as a formula. */
export function csvField(v) {
  let t = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(t)) t = "'" + t;
  return /[",\r\n']/.test(t) || t !== String(v ?? '') ? `"${t.replace(/"/g, '""')}"` : t;
}

/** A table header cell that sorts: a button that cycles the column's order, and aria-sort.
 *  current: {key, desc}; onSort(key, desc). */
export function sortHeader(label, key, current, onSort, { defaultDesc = false, cls = null } = {}) {
  const on = current && current.key === key;
  const btn = h('button', { type: 'button', class: 'sort', title: `Sort by ${label.toLowerCase()}` }, label,
    h('span', { class: 'dir', 'aria-hidden': 'true' }, on ? (current.desc ? '▼' : '▲') : ''));
  btn.addEventListener('click', () => onSort(key, on ? !current.desc : defaultDesc));
  return h('th', { scope: 'col', class: cls, 'aria-sort': on ? (current.desc ? 'descending' : 'ascending') : null }, btn);
}

/** n with thousands separators in the browser's language. */
export function fmtNumber(n) {
  return typeof n === 'number' ? n.toLocaleString() : '—';
}

/** Debounces fn by ms. */
export function debounce(fn, ms) {
  let t = 0;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
