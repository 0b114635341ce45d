// Accounts: the SIP accounts a page at a time as the server sorts and filters them (so a
// thousand are as quick as ten), with whether each is online and from which devices;
// create one, import many from CSV (checked line by line first), export them, and enable,
// disable, delete or set do-not-disturb for several at once. Each account's presence note
// and busy lamp (what its colleagues' phones show) follow presence.changed events live.

import { api, listAll } from '../api.js';
import { h, fill, errorBox, showError, toast, fmtRelative, fmtTime, debounce, showFormError, clearFormErrors, fieldError,
  cut, displayNameInput, download, csvField, sortHeader, fmtNumber, confirmDialog } from '../dom.js';
import { on, onRegistrations } from '../events.js';
import { keepPassword, generatePassword } from '../secrets.js';
import { EXT_RE, presence, deleteAccount, dndBadge } from '../users.js';
import { importCard } from '../import.js';

const STATUSES = [['', 'All accounts'], ['online', 'Online'], ['offline', 'Offline'], ['disabled', 'Disabled'], ['dnd', 'Do not disturb']];
const SORTS = ['extension', 'name', 'status', 'created'];
const LIMITS = [25, 50, 100, 200];
const BULK_PARALLEL = 4; // changes sent at once: each waits for the SIP side

export function render(main, { signal, go, query }) {
  const sortKey = (query.sort || 'extension').replace(/^-/, '');
  const state = {
    q: query.q || query.search || '',
    status: STATUSES.some(([v]) => v === query.status) ? query.status || '' : '',
    sort: { key: SORTS.includes(sortKey) ? sortKey : 'extension', desc: (query.sort || '').startsWith('-') },
    limit: LIMITS.includes(Number(query.limit)) ? Number(query.limit) : 50,
  };
  const cursors = [null]; // cursors[i]: the cursor of page i
  let page = 0;
  let users = [], regs = [], total = 0;
  let pres = new Map(); // extension -> presence (GET /presence, then presence.changed)
  const selected = new Set();

  const listBox = h('div', { id: 'accounts-list' }, h('p', { class: 'muted' }, 'Loading…'));
  const countLine = h('p', { class: 'count-line', id: 'accounts-count', 'aria-live': 'polite' });
  const search = h('input', { type: 'search', id: 'acc-search', name: 'q', placeholder: 'Extension or name', value: state.q, autocomplete: 'off' });
  const statusSel = h('select', { id: 'acc-status', name: 'status' },
    STATUSES.map(([v, label]) => h('option', { value: v, selected: v === state.status }, label)));
  const limitSel = h('select', { id: 'acc-limit', name: 'limit' },
    LIMITS.map((n) => h('option', { value: n, selected: n === state.limit }, String(n))));
  const newBtn = h('button', { type: 'button', class: 'btn primary', 'aria-expanded': 'false', 'aria-controls': 'new-account' }, 'New account');
  const importBtn = h('button', { type: 'button', class: 'btn', 'aria-expanded': 'false', 'aria-controls': 'import-card' }, 'Import CSV');
  const exportBtn = h('button', { type: 'button', class: 'btn', id: 'export-accounts' }, 'Export CSV');
  const form = createForm();
  form.hidden = true;
  const imp = importCard({ onDone: () => { page = 0; cursors.length = 1; load(); } });
  imp.el.hidden = true;
  const toggle = (btn, el, focus) => btn.addEventListener('click', () => {
    el.hidden = !el.hidden;
    btn.setAttribute('aria-expanded', String(!el.hidden));
    if (!el.hidden) focus();
  });
  toggle(newBtn, form, () => form.querySelector('input').focus());
  toggle(importBtn, imp.el, () => imp.focus());

  const bulkBar = h('div', { class: 'bulk', id: 'bulk-bar', role: 'region', 'aria-label': 'Selected accounts', hidden: true });
  const prev = h('button', { type: 'button', class: 'btn', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', class: 'btn', disabled: true }, 'Next →');
  const pageNo = h('span', { class: 'muted', id: 'accounts-page' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of accounts' }, prev, pageNo, next);

  main.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Accounts'), h('div', { class: 'actions' }, newBtn, importBtn, exportBtn)),
    form, imp.el,
    h('div', { class: 'toolbar', role: 'search' },
      h('div', { class: 'field' }, h('label', { for: 'acc-search' }, 'Search'), search),
      h('div', { class: 'field' }, h('label', { for: 'acc-status' }, 'Show'), statusSel),
      h('div', { class: 'field' }, h('label', { for: 'acc-limit' }, 'Per page'), limitSel)),
    countLine, bulkBar, listBox, pager));

  function apiQuery() {
    return { q: state.q, status: state.status, sort: (state.sort.desc ? '-' : '') + state.sort.key };
  }

  /** The page's address says its filters and order (a reload or a link shows the same). */
  function remember() {
    go('/accounts', { q: state.q, status: state.status, sort: state.sort.key === 'extension' && !state.sort.desc ? '' : (state.sort.desc ? '-' : '') + state.sort.key,
      limit: state.limit === 50 ? '' : state.limit }, { replace: true, noRender: true });
  }

  function restart() {
    page = 0;
    cursors.length = 1;
    selected.clear();
    remember();
    load();
  }

  function draw() {
    const byExt = new Map();
    for (const r of regs) {
      if (!byExt.has(r.extension)) byExt.set(r.extension, []);
      byExt.get(r.extension).push(r);
    }
    const filtered = state.q || state.status;
    const first = page * state.limit + 1;
    countLine.textContent = !total ? '' : filtered
      ? `${fmtNumber(total)} account${total === 1 ? '' : 's'} match${total === 1 ? 'es' : ''}; showing ${fmtNumber(first)}–${fmtNumber(first + users.length - 1)}.`
      : `${fmtNumber(total)} account${total === 1 ? '' : 's'}; showing ${fmtNumber(first)}–${fmtNumber(first + users.length - 1)}.`;
    drawBulk();
    if (!users.length) {
      const clear = h('button', { type: 'button', class: 'link' }, 'Show all accounts');
      clear.addEventListener('click', () => { state.q = ''; state.status = ''; search.value = ''; statusSel.value = ''; restart(); });
      fill(listBox, filtered
        ? h('p', { class: 'empty', id: 'no-match' }, 'No account matches ', state.q ? ['“', state.q, '”'] : null,
          state.status ? ` (${STATUSES.find(([v]) => v === state.status)[1].toLowerCase()})` : null, '. ', clear, '.')
        : h('p', { class: 'empty' }, 'No accounts yet. Create one with “New account” (or import a CSV file), then set up a softphone with the values its page shows.'));
      return;
    }
    const all = h('input', { type: 'checkbox', 'aria-label': 'Select every account on this page', checked: users.every((u) => selected.has(u.extension)) });
    all.addEventListener('change', () => {
      for (const u of users) { if (all.checked) selected.add(u.extension); else selected.delete(u.extension); }
      draw();
    });
    const onSort = (key, desc) => { state.sort = { key, desc }; restart(); };
    fill(listBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table accounts' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col', class: 'sel' }, all),
        sortHeader('Status', 'status', state.sort, onSort),
        sortHeader('Extension', 'extension', state.sort, onSort),
        sortHeader('Name', 'name', state.sort, onSort),
        h('th', { scope: 'col' }, 'Presence'),
        h('th', { scope: 'col' }, 'Devices (contact, user agent)'),
        sortHeader('Created', 'created', state.sort, onSort, { defaultDesc: true }),
        h('th', { scope: 'col' }, h('span', { class: 'sr' }, 'Actions')))),
      h('tbody', null, users.map((u) => row(u, byExt.get(u.extension) || []))))));
  }

  function row(u, devs) {
    const enc = encodeURIComponent(u.extension);
    const box = h('input', { type: 'checkbox', 'aria-label': `Select ${u.extension}`, checked: selected.has(u.extension) });
    box.addEventListener('change', () => {
      if (box.checked) selected.add(u.extension); else selected.delete(u.extension);
      box.closest('tr').classList.toggle('selected', box.checked);
      drawBulk();
    });
    const toggleBtn = h('button', { type: 'button', class: 'btn small' }, u.enabled ? 'Disable' : 'Enable');
    const del = h('button', { type: 'button', class: 'btn small danger' }, 'Delete');
    const err = h('div', { class: 'row-error' });
    toggleBtn.addEventListener('click', async () => {
      toggleBtn.disabled = true;
      fill(err);
      try {
        await api('PATCH', `/users/${enc}`, { body: { enabled: !u.enabled } });
        toast(`${u.extension} ${u.enabled ? 'disabled' : 'enabled'}`);
        await load();
      } catch (e) { fill(err, errorBox(e)); toggleBtn.disabled = false; }
    });
    del.addEventListener('click', async () => {
      fill(err);
      try {
        if (await deleteAccount(u.extension)) { selected.delete(u.extension); await load(); }
      } catch (e) { fill(err, errorBox(e)); }
    });
    return h('tr', { dataset: { ext: u.extension }, class: selected.has(u.extension) ? 'selected' : null },
      h('td', { class: 'sel' }, box),
      h('td', { class: 'c-status' }, presence(u, devs), u.dnd ? [' ', dndBadge(u)] : null),
      h('td', null, h('a', { href: `#/accounts/${enc}`, class: 'ext-link' }, u.extension)),
      h('td', { class: 'c-name' }, u.display_name ? cut(u.display_name, { cls: 'name' }) : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'c-presence' }, lamp(pres.get(u.extension))),
      h('td', { class: 'devices' }, devs.length ? h('ul', { class: 'plain' }, devs.map((d) =>
        h('li', null, cut(d.contact, { tag: 'code', cls: 'contact' }), cut(d.user_agent || 'unknown device', { cls: 'ua' }),
          h('span', { class: 'muted small' }, `expires ${fmtRelative(d.expires_at)}`)))) : h('span', { class: 'muted' }, 'none')),
      h('td', { class: 'nowrap muted small', title: fmtTime(u.created_at) }, fmtRelative(u.created_at)),
      h('td', { class: 'actions-cell' },
        h('a', { class: 'btn small', href: `#/accounts/${enc}`, 'aria-label': `Edit ${u.extension}` }, 'Edit'),
        h('a', { class: 'btn small', href: `#/forwarding/${enc}`, 'aria-label': `Forwarding of ${u.extension}` }, 'Forwarding'),
        toggleBtn, del, err));
  }

  function drawBulk() {
    if (!selected.size) { bulkBar.hidden = true; return; }
    const list = [...selected];
    const act = (label, cls, fn) => {
      const b = h('button', { type: 'button', class: ['btn small', cls] }, label);
      b.addEventListener('click', () => fn(list));
      return b;
    };
    const clear = h('button', { type: 'button', class: 'link' }, 'Clear the selection');
    clear.addEventListener('click', () => { selected.clear(); draw(); });
    bulkBar.hidden = false;
    fill(bulkBar, h('strong', { id: 'bulk-count' }, `${list.length} selected`),
      act('Enable', null, (l) => bulk(l, 'enable')), act('Disable', null, (l) => bulk(l, 'disable')),
      act('Do not disturb on', null, (l) => bulk(l, 'dnd')), act('Do not disturb off', null, (l) => bulk(l, 'undnd')),
      act('Delete', 'danger', (l) => bulk(l, 'delete')), clear);
  }

  const VERBS = {
    enable: { title: 'Enable', done: 'enabled', call: (ext) => api('PATCH', `/users/${encodeURIComponent(ext)}`, { body: { enabled: true } }),
      text: 'They may register and make calls again.' },
    disable: { title: 'Disable', done: 'disabled', call: (ext) => api('PATCH', `/users/${encodeURIComponent(ext)}`, { body: { enabled: false } }),
      text: 'Their devices lose their registrations and cannot register or call until enabled again.' },
    dnd: { title: 'Turn on do not disturb for', button: 'Turn on', done: 'set to do not disturb',
      call: (ext) => api('PATCH', `/users/${encodeURIComponent(ext)}`, { body: { dnd: true } }),
      text: 'Calls to them get busy (or go to their busy forward) until it is turned off; they can still make calls.' },
    undnd: { title: 'Turn off do not disturb for', button: 'Turn off', done: 'taking calls again', fail: 'changed',
      call: (ext) => api('PATCH', `/users/${encodeURIComponent(ext)}`, { body: { dnd: false } }),
      text: 'Their phones ring again for calls to them.' },
    delete: { title: 'Delete', done: 'deleted', call: (ext) => api('DELETE', `/users/${encodeURIComponent(ext)}`),
      text: 'The accounts, their registrations and forwarding rules are removed. Their call records stay.' },
  };

  async function bulk(list, verb) {
    const v = VERBS[verb];
    const names = list.slice(0, 8).join(', ') + (list.length > 8 ? ` and ${list.length - 8} more` : '');
    if (!(await confirmDialog(`${v.title} ${list.length} account${list.length === 1 ? '' : 's'}?`, `${names}. ${v.text}`, v.button || v.title))) return;
    const progress = h('span', { class: 'progress', role: 'status' });
    fill(bulkBar, h('strong', null, `${v.button || v.title}: `), progress);
    const failed = [];
    let done = 0, i = 0;
    const worker = async () => {
      while (i < list.length) {
        const ext = list[i++];
        try { await v.call(ext); } catch (e) { if (!(verb === 'delete' && e.status === 404)) failed.push(`${ext}: ${e.message}`); }
        progress.textContent = `${++done} of ${list.length}…`;
      }
    };
    await Promise.all(Array.from({ length: Math.min(BULK_PARALLEL, list.length) }, worker));
    selected.clear();
    toast(`${list.length - failed.length} account${list.length - failed.length === 1 ? '' : 's'} ${v.done}`);
    if (verb === 'delete') { page = 0; cursors.length = 1; }
    await load();
    if (failed.length) {
      bulkBar.hidden = false;
      fill(bulkBar, h('div', { class: 'error', role: 'alert' }, h('strong', null, `${failed.length} could not be ${v.fail || v.done}: `), failed.join('; ')));
    }
  }

  async function load() {
    prev.disabled = next.disabled = true;
    try {
      const [r, rs] = await Promise.all([
        api('GET', '/users', { query: { ...apiQuery(), limit: state.limit, cursor: cursors[page] }, signal }),
        listAll('/registrations', {}, { signal }),
      ]);
      users = r.items;
      total = r.total;
      regs = rs;
      if (r.next_cursor) cursors[page + 1] = r.next_cursor; else cursors.length = page + 1;
      draw();
      prev.disabled = page === 0;
      next.disabled = !r.next_cursor;
      pageNo.textContent = `page ${page + 1} of ${Math.max(1, Math.ceil(total / state.limit))}`;
      pager.hidden = page === 0 && !r.next_cursor;
    } catch (e) { showError(listBox, e, load); }
  }

  // What the buddy lists and busy lamps of the phones show of p (GET /presence).
  function lamp(p) {
    if (!p) return h('span', { class: 'muted' }, '—');
    const LAMPS = { trying: ['calling', 'calling'], early: ['ringing', 'ringing'], confirmed: ['talking', 'in a call'] };
    const [cls, text] = LAMPS[p.dialog] || (p.busy ? ['talking', 'in a call'] : [null, null]);
    return h('span', { class: 'lamp', dataset: { dialog: p.dialog, basic: p.basic } },
      cut(p.note || (p.basic === 'open' ? 'Available' : 'Offline'), { cls: p.basic === 'open' ? 'p-note' : 'p-note muted' }),
      cls ? [' ', h('span', { class: ['badge', `b-${cls}`] }, text)] : null);
  }

  async function loadPresence() {
    try {
      const r = await api('GET', '/presence', { signal });
      pres = new Map(r.items.map((p) => [p.extension, p]));
      draw();
    } catch (e) { if (e.name !== 'AbortError') console.error('presence', e); }
  }

  function presenceChanged(type, p) {
    if (!p || !users.some((u) => u.extension === p.extension)) { if (p) pres.set(p.extension, p); return; }
    pres.set(p.extension, p);
    const cell = listBox.querySelector(`tr[data-ext="${CSS.escape(p.extension)}"] .c-presence`);
    if (cell) fill(cell, lamp(p));
  }

  async function loadRegistrations() {
    try {
      regs = await listAll('/registrations', {}, { signal });
      draw();
    } catch (e) { showError(listBox, e, load); }
  }

  exportBtn.addEventListener('click', async () => {
    exportBtn.disabled = true;
    try {
      const all = await listAll('/users', apiQuery(), { signal, max: 100000 });
      const lines = [['extension', 'display_name', 'enabled', 'online', 'call_waiting', 'ring_timeout', 'created_at', 'updated_at', 'dnd'].join(',')];
      for (const u of all) {
        lines.push([u.extension, u.display_name, u.enabled, u.online, u.call_waiting, u.ring_timeout ?? '', u.created_at, u.updated_at, u.dnd].map(csvField).join(','));
      }
      const day = new Date().toISOString().slice(0, 10);
      download(`sipbx-accounts-${day}.csv`, 'text/csv;charset=utf-8', lines.join('\r\n') + '\r\n');
      toast(`${all.length} account${all.length === 1 ? '' : 's'} exported (no passwords)`);
    } catch (e) { if (e.name !== 'AbortError') toast(`Export failed: ${e.message}`); } finally { exportBtn.disabled = false; }
  });

  function createForm() {
    const ext = h('input', { id: 'new-ext', name: 'extension', required: true, maxlength: 32, autocomplete: 'off', inputmode: 'text', placeholder: 'e.g. 100' });
    const dn = displayNameInput('new-name', '', { placeholder: 'e.g. Alice' });
    const pw = h('input', { id: 'new-pw', name: 'password', autocomplete: 'new-password', minlength: 4, maxlength: 128, placeholder: 'leave empty to generate one' });
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create');
    const f = h('form', { class: 'card form-grid', id: 'new-account', novalidate: true, 'aria-label': 'New account' },
      h('h2', null, 'New account'),
      h('div', { class: 'field' }, h('label', { for: 'new-ext' }, 'Extension'), ext, h('p', { class: 'hint' }, 'The SIP user name: digits or letters, up to 32.')),
      h('div', { class: 'field' }, h('label', { for: 'new-name' }, 'Display name'), dn.input, dn.counter),
      h('div', { class: 'field' }, h('label', { for: 'new-pw' }, 'Password'), pw, h('p', { class: 'hint' }, 'Shown once after creation.')),
      h('div', { class: 'form-error-slot' }),
      h('div', { class: 'actions' }, submit));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFormErrors(f);
      const e = ext.value.trim();
      if (!EXT_RE.test(e)) { fieldError(ext, e ? 'Use 1 to 32 letters, digits or - _ . ! ~ * \' + (not starting with -).' : 'Enter an extension.'); ext.focus(); return; }
      if (!dn.check()) return;
      if (pw.value && pw.value.length < 4) { fieldError(pw, 'At least 4 characters (or leave empty to generate one).'); pw.focus(); return; }
      const password = pw.value || generatePassword();
      submit.disabled = true;
      try {
        await api('POST', '/users', { body: { extension: e, password, display_name: dn.input.value.trim() } });
        keepPassword(e, password);
        toast(`Account ${e} created`);
        go(`/accounts/${encodeURIComponent(e)}`);
      } catch (err) {
        showFormError(f, err);
      } finally { submit.disabled = false; }
    });
    return f;
  }

  search.addEventListener('input', debounce(() => { state.q = search.value.trim(); restart(); }, 250));
  statusSel.addEventListener('change', () => { state.status = statusSel.value; restart(); });
  limitSel.addEventListener('change', () => { state.limit = Number(limitSel.value); restart(); });
  prev.addEventListener('click', () => { if (page > 0) { page--; load(); } });
  next.addEventListener('click', () => { if (cursors[page + 1]) { page++; load(); } });

  load();
  loadPresence();
  const reload = debounce(load, 300);
  const offs = [
    // a change of who is online may move accounts in or out of the page (status filter
    // and order): the page is read again, not patched
    onRegistrations((ext) => users.some((u) => u.extension === ext), state.status || state.sort.key === 'status' ? reload : loadRegistrations, reload),
    on('reconnect', load),
    on('reconnect', loadPresence),
    on('presence.changed', presenceChanged),
  ];
  return () => offs.forEach((f) => f());
}
