// Accounts: every SIP account with whether it is online and from which devices; create,
// disable/enable and delete here, everything else on the account's own page.

import { api, listAll } from '../api.js';
import { h, fill, errorBox, showError, toast, fmtRelative, debounce, showFormError, clearFormErrors, fieldError } from '../dom.js';
import { on, onRegistrations } from '../events.js';
import { keepPassword, generatePassword } from '../secrets.js';
import { EXT_RE, presence, deleteAccount } from '../users.js';

export function render(main, { signal, go, query }) {
  const listBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const search = h('input', { type: 'search', name: 'search', placeholder: 'Search extension or name', 'aria-label': 'Search accounts', value: query.search || '' });
  const newBtn = h('button', { type: 'button', class: 'btn primary', 'aria-expanded': 'false', 'aria-controls': 'new-account' }, 'New account');
  const form = createForm();
  form.hidden = true;
  newBtn.addEventListener('click', () => {
    form.hidden = !form.hidden;
    newBtn.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) form.querySelector('input').focus();
  });

  main.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Accounts'), newBtn),
    form,
    h('div', { class: 'toolbar' }, search),
    listBox));

  let users = [], regs = [];

  function draw() {
    const q = search.value.trim().toLowerCase();
    const byExt = new Map();
    for (const r of regs) {
      if (!byExt.has(r.extension)) byExt.set(r.extension, []);
      byExt.get(r.extension).push(r);
    }
    const shown = users.filter((u) => !q || u.extension.toLowerCase().includes(q) || (u.display_name || '').toLowerCase().includes(q));
    if (!users.length) {
      fill(listBox, h('p', { class: 'empty' }, 'No accounts yet. Create one with “New account”, then set up a softphone with the values its page shows.'));
      return;
    }
    fill(listBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table accounts' },
      h('thead', null, h('tr', null, ['Status', 'Extension', 'Name', 'Devices (contact, user agent)', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, shown.map((u) => {
        const devs = byExt.get(u.extension) || [];
        const toggle = h('button', { type: 'button', class: 'btn small' }, u.enabled ? 'Disable' : 'Enable');
        const del = h('button', { type: 'button', class: 'btn small danger' }, 'Delete');
        const err = h('div', { class: 'row-error' });
        toggle.addEventListener('click', async () => {
          toggle.disabled = true;
          fill(err);
          try {
            await api('PATCH', `/users/${encodeURIComponent(u.extension)}`, { body: { enabled: !u.enabled } });
            toast(`${u.extension} ${u.enabled ? 'disabled' : 'enabled'}`);
            await load();
          } catch (e) { fill(err, errorBox(e)); toggle.disabled = false; }
        });
        del.addEventListener('click', async () => {
          fill(err);
          try {
            if (await deleteAccount(u.extension)) await load();
          } catch (e) { fill(err, errorBox(e)); }
        });
        return h('tr', { dataset: { ext: u.extension } },
          h('td', null, presence(u, devs)),
          h('td', null, h('a', { href: `#/accounts/${encodeURIComponent(u.extension)}`, class: 'ext-link' }, u.extension)),
          h('td', null, u.display_name || h('span', { class: 'muted' }, '—')),
          h('td', { class: 'devices' }, devs.length ? h('ul', { class: 'plain' }, devs.map((d) =>
            h('li', null, h('code', { class: 'contact' }, d.contact), h('span', { class: 'ua' }, d.user_agent || 'unknown device'),
              h('span', { class: 'muted small' }, ` expires ${fmtRelative(d.expires_at)}`)))) : h('span', { class: 'muted' }, 'none')),
          h('td', { class: 'actions-cell' },
            h('a', { class: 'btn small', href: `#/accounts/${encodeURIComponent(u.extension)}` }, 'Edit'),
            h('a', { class: 'btn small', href: `#/forwarding/${encodeURIComponent(u.extension)}` }, 'Forwarding'),
            toggle, del, err));
      })))));
  }

  async function load() {
    try {
      [users, regs] = await Promise.all([listAll('/users', {}, { signal }), listAll('/registrations', {}, { signal })]);
      draw();
    } catch (e) { showError(listBox, e, load); }
  }

  async function loadRegistrations() {
    try {
      regs = await listAll('/registrations', {}, { signal });
      draw();
    } catch (e) { showError(listBox, e, load); }
  }

  function createForm() {
    const ext = h('input', { id: 'new-ext', name: 'extension', required: true, maxlength: 32, autocomplete: 'off', inputmode: 'text', placeholder: 'e.g. 100' });
    const name = h('input', { id: 'new-name', name: 'display_name', maxlength: 127, autocomplete: 'off', placeholder: 'e.g. Alice' });
    const pw = h('input', { id: 'new-pw', name: 'password', autocomplete: 'new-password', minlength: 4, maxlength: 128, placeholder: 'leave empty to generate one' });
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create');
    const f = h('form', { class: 'card form-grid', id: 'new-account', novalidate: true, 'aria-label': 'New account' },
      h('h2', null, 'New account'),
      h('div', { class: 'field' }, h('label', { for: 'new-ext' }, 'Extension'), ext, h('p', { class: 'hint' }, 'The SIP user name: digits or letters, up to 32.')),
      h('div', { class: 'field' }, h('label', { for: 'new-name' }, 'Display name'), name),
      h('div', { class: 'field' }, h('label', { for: 'new-pw' }, 'Password'), pw, h('p', { class: 'hint' }, 'Shown once after creation.')),
      h('div', { class: 'form-error-slot' }),
      h('div', { class: 'actions' }, submit));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFormErrors(f);
      const e = ext.value.trim();
      if (!EXT_RE.test(e)) { fieldError(ext, e ? 'Use 1 to 32 letters, digits or - _ . ! ~ * \' + (not starting with -).' : 'Enter an extension.'); ext.focus(); return; }
      if (pw.value && pw.value.length < 4) { fieldError(pw, 'At least 4 characters (or leave empty to generate one).'); pw.focus(); return; }
      const password = pw.value || generatePassword();
      submit.disabled = true;
      try {
        await api('POST', '/users', { body: { extension: e, password, display_name: name.value.trim() } });
        keepPassword(e, password);
        toast(`Account ${e} created`);
        go(`/accounts/${encodeURIComponent(e)}`);
      } catch (err) {
        showFormError(f, err);
      } finally { submit.disabled = false; }
    });
    return f;
  }

  search.addEventListener('input', debounce(() => { draw(); go('/accounts', { search: search.value.trim() }, { replace: true, noRender: true }); }, 150));
  load();
  const offs = [
    onRegistrations((ext) => users.some((u) => u.extension === ext), loadRegistrations, load),
    on('reconnect', load),
  ];
  return () => offs.forEach((f) => f());
}
