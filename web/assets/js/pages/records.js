// Call records: filter by date range, extension and outcome, search by Call-ID or name,
// sort by any column, see how many match; page through with the API's cursors (so a
// million rows page as fast as ten), download the same selection as CSV. A record a
// transfer or pickup made names the call it came from, and that call's record the calls
// that came from it.

import { api, url } from '../api.js';
import { h, fill, errorBox, fmtIso, showFormError, clearFormErrors, fieldError, fmtNumber } from '../dom.js';
import { cdrTable, annotateLinks } from '../cdrs.js';
import { DISPOSITIONS } from '../chart.js';
import { EXT_RE } from '../users.js';

/** "2024-05-01T12:30" (a datetime-local value, local time) -> RFC 3339 UTC. */
function localToUtc(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? null : fmtIso(d);
}

function localValue(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function render(main, { query, signal, go }) {
  const since = h('input', { id: 'f-since', name: 'since', type: 'datetime-local', value: query.since || '' });
  const until = h('input', { id: 'f-until', name: 'until', type: 'datetime-local', value: query.until || '' });
  const ext = h('input', { id: 'f-ext', name: 'ext', value: query.ext || '', placeholder: 'any', maxlength: 32, autocomplete: 'off' });
  const q = h('input', { id: 'f-q', name: 'q', type: 'search', value: query.q || '', placeholder: 'Call-ID, name or extension', autocomplete: 'off', spellcheck: 'false' });
  const disp = h('select', { id: 'f-disp', name: 'disposition' },
    h('option', { value: '' }, 'any'),
    DISPOSITIONS.map((d) => h('option', { value: d.key, selected: query.disposition === d.key }, d.label)));
  const limit = h('select', { id: 'f-limit', name: 'limit' }, [25, 50, 100, 500].map((n) => h('option', { value: n, selected: String(n) === (query.limit || '50') }, String(n))));
  const apply = h('button', { type: 'submit', class: 'btn primary' }, 'Apply');
  const clear = h('button', { type: 'button', class: 'btn' }, 'Clear');
  const quick = (label, hours) => {
    const b = h('button', { type: 'button', class: 'btn small' }, label);
    b.addEventListener('click', () => {
      const now = new Date();
      const from = hours === 'today' ? new Date(now.getFullYear(), now.getMonth(), now.getDate()) : new Date(now.getTime() - hours * 3600e3);
      since.value = localValue(from);
      until.value = '';
      form.requestSubmit();
    });
    return b;
  };
  const form = h('form', { class: 'card filters', novalidate: true, 'aria-label': 'Filter call records' },
    h('div', { class: 'field f-search' }, h('label', { for: 'f-q' }, 'Search'), q),
    h('div', { class: 'field' }, h('label', { for: 'f-since' }, 'From'), since),
    h('div', { class: 'field' }, h('label', { for: 'f-until' }, 'Until'), until),
    h('div', { class: 'field' }, h('label', { for: 'f-ext' }, 'Extension'), ext),
    h('div', { class: 'field' }, h('label', { for: 'f-disp' }, 'Outcome'), disp),
    h('div', { class: 'field' }, h('label', { for: 'f-limit' }, 'Per page'), limit),
    h('div', { class: 'actions' }, apply, clear),
    h('div', { class: 'quick' }, quick('Today', 'today'), quick('Last 24 h', 24), quick('Last 7 days', 168)),
    h('div', { class: 'form-error-slot' }));

  const filters = { since: localToUtc(query.since), until: localToUtc(query.until), ext: query.ext || '', disposition: query.disposition || '', q: query.q || '' };
  const SORTS = ['start', 'caller', 'dialled', 'disposition', 'talk', 'duration'];
  const sortKey = (query.sort || '-start').replace(/^-/, '');
  const sort = SORTS.includes(sortKey) ? { key: sortKey, desc: (query.sort || '-start').startsWith('-') } : { key: 'start', desc: true };
  const countLine = h('p', { class: 'count-line', id: 'records-count', 'aria-live': 'polite' });
  const csv = h('a', { class: 'btn', id: 'csv-link', href: url('/cdrs.csv', filters), download: 'sipbx-calls.csv' }, 'Download CSV');
  const tableBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const prev = h('button', { type: 'button', class: 'btn', disabled: true }, '← Newer');
  const next = h('button', { type: 'button', class: 'btn', disabled: true }, 'Older →');
  const pageNo = h('span', { class: 'muted' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageNo, next);

  main.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Call records'), csv),
    form, countLine, tableBox, pager));

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    if (since.value && until.value && new Date(since.value) >= new Date(until.value)) {
      fieldError(until, '“Until” must be after “From”.');
      until.focus();
      return;
    }
    if (ext.value.trim() && !EXT_RE.test(ext.value.trim())) {
      fieldError(ext, 'An extension is up to 32 letters or digits.');
      ext.focus();
      return;
    }
    go('/records', { ...here(), since: since.value, until: until.value, ext: ext.value.trim(), disposition: disp.value, q: q.value.trim(), limit: limit.value === '50' ? '' : limit.value });
  });
  /** The page's address as it is now. */
  function here() {
    return { since: query.since, until: query.until, ext: query.ext, disposition: query.disposition, q: query.q, limit: query.limit,
      sort: sort.key === 'start' && sort.desc ? '' : (sort.desc ? '-' : '') + sort.key };
  }
  const onSort = (key, desc) => go('/records', { ...here(), sort: key === 'start' && desc ? '' : (desc ? '-' : '') + key });
  clear.addEventListener('click', () => go('/records', {}));

  // the link marks of a page are completed in the background: stopped when another is shown
  let pageAc = null;
  signal.addEventListener('abort', () => { if (pageAc) pageAc.abort(); }, { once: true });
  const pageSignal = () => {
    if (pageAc) pageAc.abort();
    pageAc = new AbortController();
    return pageAc.signal;
  };
  const cursors = [null]; // cursors[i] = the cursor of page i
  let page = 0;
  let total = null; // of the filters, counted once with the first page

  async function load() {
    prev.disabled = next.disabled = true;
    try {
      const r = await api('GET', '/cdrs', { query: { ...filters, sort: sort.key === 'start' && sort.desc ? '' : (sort.desc ? '-' : '') + sort.key,
        limit: limit.value, cursor: cursors[page], count: total === null ? 'true' : '' }, signal });
      const items = r.items || [];
      if (typeof r.total === 'number') total = r.total;
      if (r.next_cursor) cursors[page + 1] = r.next_cursor; else cursors.length = page + 1;
      const filtered = Object.values(filters).some((v) => v);
      countLine.textContent = total === null ? '' : `${fmtNumber(total)} record${total === 1 ? '' : 's'}${filtered ? ` match${total === 1 ? 'es' : ''} the filters` : ''}.`;
      fill(tableBox, items.length ? cdrTable(items, { sort, onSort }) : h('p', { class: 'empty' }, page ? 'No more records.' : 'No call matches these filters.'));
      annotateLinks(tableBox, items, { successors: true, signal: pageSignal() });
      const pages = Math.max(1, Math.ceil((total || 0) / Number(limit.value)));
      prev.disabled = page === 0;
      next.disabled = !r.next_cursor;
      pageNo.textContent = `page ${page + 1} of ${fmtNumber(pages)}`;
      pager.hidden = page === 0 && !r.next_cursor;
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (e.status === 400 || e.status === 422) showFormError(form, e);
      fill(tableBox, errorBox(e, load));
    }
  }
  prev.addEventListener('click', () => { if (page > 0) { page--; load().then(() => tableBox.scrollIntoView({ block: 'start' })); } });
  next.addEventListener('click', () => { if (cursors[page + 1]) { page++; load().then(() => tableBox.scrollIntoView({ block: 'start' })); } });
  load();
}
