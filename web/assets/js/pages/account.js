// One account: edit it, switch do-not-disturb on or off, reset its password (shown once),
// see its devices (with the ladders of their registrations), the values a softphone needs,
// and its calls: totals of the last day, week or month and the most recent ones; links to
// its forwarding rules and its voicemail (with the number of new messages).

import { api, listAll } from '../api.js';
import { h, fill, errorBox, showError, toast, confirmDialog, copyField, fmtTime, fmtRelative, debounce, showFormError, clearFormErrors, fieldError,
  cut, displayNameInput, fmtDuration, fmtNumber } from '../dom.js';
import { on, onChange } from '../events.js';
import { getSettings } from '../app.js';
import { takePassword, generatePassword } from '../secrets.js';
import { presence, deleteAccount } from '../users.js';
import { recentCalls, ladderHref } from '../cdrs.js';

export function render(main, { params, signal, go }) {
  const ext = params[0];
  const enc = encodeURIComponent(ext);
  const head = h('div', { class: 'page-head' }, h('h1', null, 'Account ', ext));
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('section', { class: 'page' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/accounts' }, 'Accounts'), ' / ', ext),
    head, body));

  let user = null, regs = [], settings = null;
  let shownPassword = takePassword(ext) || null; // just created or reset: show it once
  const devicesBox = h('div');
  const pwBox = h('div');
  const phoneBox = h('div');
  const callsBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const totalsBox = h('div', { id: 'account-totals' }, h('p', { class: 'muted' }, 'Loading…'));
  let period = '7d';
  const presenceSlot = h('span');

  async function load() {
    try {
      [user, regs] = await Promise.all([
        api('GET', `/users/${enc}`, { signal }),
        listAll('/registrations', { extension: ext }, { signal }),
      ]);
    } catch (e) {
      showError(body, e.status === 404 ? new Error(`There is no account ${ext}.`) : e, e.status === 404 ? null : load);
      return;
    }
    try { settings = await getSettings(); } catch (e) { settings = null; }
    draw();
    loadCalls();
  }

  function draw() {
    const vmLink = h('a', { href: `#/voicemail/${enc}`, id: 'account-voicemail' }, 'Voicemail');
    fill(head, h('h1', null, 'Account ', ext, user.display_name ? h('span', { class: 'muted cut-inline', title: user.display_name }, ` · ${user.display_name}`) : null),
      h('div', { class: 'head-side' }, presenceSlot, dndSwitch(),
        h('p', { class: 'account-links' }, h('a', { href: `#/forwarding/${enc}` }, 'Forwarding'), ' · ', vmLink)));
    api('GET', `/users/${enc}/voicemail`, { signal }).then((b) => {
      fill(vmLink, 'Voicemail', b.new ? ` (${b.new} new)` : b.old ? ` (${b.old} heard)` : '');
    }).catch(() => { /* the link works without the count */ });
    fill(presenceSlot, presence(user, regs));
    fill(body,
      h('div', { class: 'grid-2' },
        editForm(),
        h('div', null, passwordCard(), phoneBox)),
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', null, 'Devices'), kickButton()), devicesBox),
      h('section', { class: 'card', 'aria-labelledby': 'calls-title' }, h('div', { class: 'card-head' }, h('h2', { id: 'calls-title' }, 'Calls'),
        periodButtons(), h('a', { href: `#/records?ext=${enc}` }, 'All records of ', ext)), totalsBox,
        h('h3', { class: 'section-title' }, 'Most recent'), callsBox),
      h('section', { class: 'card danger-zone' }, h('h2', null, 'Delete this account'),
        h('p', null, 'Removes the account, its registrations and forwarding rules. Call records stay.'), deleteButton()));
    drawDevices();
    drawPhone();
  }

  async function reloadDevices() {
    try {
      regs = await listAll('/registrations', { extension: ext }, { signal });
      if (user) fill(presenceSlot, presence(user, regs));
      drawDevices();
    } catch (e) { showError(devicesBox, e, reloadDevices); }
  }

  function drawDevices() {
    if (!regs.length) {
      fill(devicesBox, h('p', { class: 'empty' }, user && !user.enabled ? 'Disabled accounts cannot register.' : 'No device is registered. Set one up with the values under “Configure your softphone”.'));
      return;
    }
    fill(devicesBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table devices-table' },
      h('thead', null, h('tr', null, ['Contact', 'User agent', 'From', 'Registered', 'Expires', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, regs.map((r) => h('tr', null,
        h('td', { class: 'c-contact' }, cut(r.contact, { tag: 'code', cls: 'contact' })),
        h('td', { class: 'c-ua' }, cut(r.user_agent || '—')),
        h('td', { class: 'nowrap' }, `${r.source || '?'} (${(r.transport || '').toUpperCase()})`),
        h('td', { class: 'nowrap' }, fmtTime(r.registered_at)),
        h('td', { class: 'nowrap' }, fmtRelative(r.expires_at)),
        h('td', null, r.call_id ? h('a', { href: ladderHref(r.call_id), class: 'ladder-link' }, 'Ladder')
          : h('span', { class: 'muted', title: 'this sipbx does not report the Call-ID of registrations' }, '—'))))))));
  }

  function editForm() {
    const dn = displayNameInput('ed-name', user.display_name || '');
    const name = dn.input;
    const rt = h('input', { id: 'ed-rt', name: 'ring_timeout', type: 'number', min: 1, max: 3600, inputmode: 'numeric', value: user.ring_timeout ?? '', placeholder: settings ? `default (${settings.ring_timeout} s)` : 'default' });
    const cw = h('input', { id: 'ed-cw', name: 'call_waiting', type: 'checkbox', checked: user.call_waiting });
    const en = h('input', { id: 'ed-en', name: 'enabled', type: 'checkbox', checked: user.enabled });
    const save = h('button', { type: 'submit', class: 'btn primary' }, 'Save');
    const f = h('form', { class: 'card', novalidate: true, 'aria-label': 'Edit account' },
      h('h2', null, 'Settings'),
      h('div', { class: 'field' }, h('label', { for: 'ed-name' }, 'Display name'), name, dn.counter),
      h('div', { class: 'field' }, h('label', { for: 'ed-rt' }, 'Ring timeout (seconds)'), rt, h('p', { class: 'hint' }, 'How long a call to this account rings; empty uses the server default.')),
      h('div', { class: 'field check' }, cw, h('label', { for: 'ed-cw' }, 'Call waiting (a second call rings during a call)')),
      h('div', { class: 'field check' }, en, h('label', { for: 'ed-en' }, 'Enabled (may register and make calls)')),
      h('div', { class: 'form-error-slot' }),
      h('div', { class: 'actions' }, save));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFormErrors(f);
      if (!dn.check()) return;
      let ring = null;
      if (rt.value !== '') {
        ring = Number(rt.value);
        if (!Number.isInteger(ring) || ring < 1 || ring > 3600) { fieldError(rt, 'A whole number of seconds from 1 to 3600, or empty.'); rt.focus(); return; }
      }
      save.disabled = true;
      try {
        user = await api('PATCH', `/users/${enc}`, { body: { display_name: name.value.trim(), ring_timeout: ring, call_waiting: cw.checked, enabled: en.checked } });
        toast('Saved');
        draw(); // from the user as PATCH answered it
      } catch (e) { showFormError(f, e); } finally { save.disabled = false; }
    });
    return f;
  }

  /** Do not disturb, switched at once (PATCH dnd): calls to the account get busy. */
  function dndSwitch() {
    const help = h('span', { class: 'hint', id: 'dnd-help' });
    const err = h('div', { class: 'row-error' });
    const b = h('button', { type: 'button', role: 'switch', class: 'switch', id: 'dnd-switch', 'aria-describedby': 'dnd-help' },
      h('span', { class: 'track', 'aria-hidden': 'true' }, h('span', { class: 'thumb' })), 'Do not disturb');
    const show = () => {
      b.setAttribute('aria-checked', String(!!user.dnd));
      help.textContent = user.dnd ? `Calls to ${ext} get busy (or its busy forward); it can still call out.` : '';
    };
    b.addEventListener('click', async () => {
      b.disabled = true;
      fill(err);
      try {
        const u = await api('PATCH', `/users/${enc}`, { body: { dnd: !user.dnd } });
        user.dnd = u.dnd; // only this: the settings form may hold changes not saved yet
        show();
        toast(u.dnd ? `Do not disturb on for ${ext}` : `Do not disturb off for ${ext}`);
      } catch (e) { fill(err, errorBox(e)); } finally { b.disabled = false; }
    });
    show();
    return h('div', { class: 'dnd-box' }, b, help, err);
  }

  function passwordCard() {
    const box = h('section', { class: 'card' }, h('h2', null, 'Password'), pwBox);
    drawPassword();
    return box;
  }

  function drawPassword() {
    const btn = h('button', { type: 'button', class: 'btn' }, shownPassword ? 'Reset again' : 'Reset password');
    const err = h('div');
    btn.addEventListener('click', async () => {
      if (!(await confirmDialog(`Reset the password of ${ext}?`, 'Devices using the old password stop registering at their next refresh.', 'Reset'))) return;
      const pw = generatePassword();
      btn.disabled = true;
      fill(err);
      try {
        await api('PATCH', `/users/${enc}`, { body: { password: pw } });
        shownPassword = pw;
        drawPassword();
        drawPhone();
        toast('Password reset');
      } catch (e) { fill(err, errorBox(e)); btn.disabled = false; }
    });
    fill(pwBox,
      shownPassword ? h('div', { class: 'secret' },
        h('p', null, h('strong', null, 'New password — shown only now. '), 'Copy it into the softphone; sipbx keeps only a digest of it.'),
        copyField(shownPassword, 'New password')) :
        h('p', { class: 'muted' }, 'sipbx cannot show the current password (it keeps only a digest). Reset it to get a new one.'),
      btn, err);
  }

  function drawPhone() {
    if (!settings) {
      fill(phoneBox, h('section', { class: 'card' }, h('h2', null, 'Configure your softphone'), h('p', { class: 'muted' }, 'Server settings are not available.')));
      return;
    }
    const port = settings.sip && settings.sip.port;
    const server = port && port !== 5060 ? `${settings.domain}:${port}` : settings.domain;
    const transports = (settings.sip && settings.sip.transports) || ['udp', 'tcp'];
    const tls = settings.sip && settings.sip.tls_port;
    const cert = settings.sip && settings.sip.certificate;
    const rows = [
      ['SIP server / proxy', server],
      ['Domain (realm)', settings.domain],
      ['User name', ext],
      ['Login / auth user', ext],
      ['Password', shownPassword || null],
      ['Transport', transports.map((t) => String(t).toUpperCase()).join(' or ')],
    ];
    if (tls) {
      rows.push(['TLS server', `${settings.domain}:${tls} (transport TLS)`]);
      if (cert && cert.fingerprint_sha256) rows.push(['TLS certificate SHA-256', cert.fingerprint_sha256]);
    }
    fill(phoneBox, h('section', { class: 'card phone-card', 'aria-label': 'Configure your softphone' },
      h('h2', null, 'Configure your softphone'),
      h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, k),
        h('dd', null, v === null ? h('span', { class: 'muted' }, 'the one you set (or reset it)') : h('code', null, String(v)))])),
      h('p', { class: 'hint' }, 'MicroSIP: Menu → Add account; SIP Server = server, Username and Login = ', ext, ', Domain = domain. ',
        'Linphone: Use a SIP account; Username = ', ext, ', SIP domain = server, Transport UDP.'),
      tls ? h('p', { class: 'hint', id: 'tls-hint' }, 'Over TLS (encrypted signalling): SIP server = TLS server, transport TLS. ',
        cert && cert.generated ? 'The certificate is self-signed: pin its SHA-256 fingerprint in the phone (or accept it once), or install a certificate of your own. ' : '',
        'Voice (RTP/SRTP) goes between the phones; choose SRTP in both phones to encrypt it too.') : null));
  }

  function kickButton() {
    const b = h('button', { type: 'button', class: 'btn small' }, 'Remove registrations');
    b.addEventListener('click', async () => {
      if (!(await confirmDialog(`Remove the registrations of ${ext}?`, 'The devices are not told; they register again at their next refresh if they still may.', 'Remove'))) return;
      try {
        await api('DELETE', `/registrations/${enc}`);
        toast('Registrations removed');
        reloadDevices();
      } catch (e) { fill(devicesBox, errorBox(e, reloadDevices)); }
    });
    return b;
  }

  function deleteButton() {
    const b = h('button', { type: 'button', class: 'btn danger' }, `Delete ${ext}`);
    const err = h('div');
    b.addEventListener('click', async () => {
      fill(err);
      try {
        if (await deleteAccount(ext)) go('/accounts');
      } catch (e) { fill(err, errorBox(e)); }
    });
    return h('div', null, b, err);
  }

  function loadCalls() {
    recentCalls(callsBox, { ext, limit: 10 }, 'No calls yet.', signal);
    loadTotals();
  }

  function periodButtons() {
    const names = { '24h': 'Last 24 h', '7d': '7 days', '30d': '30 days' };
    const group = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Period of the totals' });
    for (const [p, label] of Object.entries(names)) {
      const b = h('button', { type: 'button', class: 'btn small', 'aria-pressed': String(p === period), dataset: { period: p } }, label);
      b.addEventListener('click', () => {
        period = p;
        for (const x of group.children) x.setAttribute('aria-pressed', String(x.dataset.period === p));
        loadTotals();
      });
      group.append(b);
    }
    return group;
  }

  async function loadTotals() {
    try {
      const s = await api('GET', '/cdrs/stats', { query: { ext, period }, signal });
      const me = s.items.find((i) => i.extension === ext) || { placed: { calls: 0, answered: 0, talk_seconds: 0 }, received: { calls: 0, answered: 0, talk_seconds: 0 }, answer_rate: null, average_talk_seconds: null };
      const pct = (x) => (x === null || x === undefined ? '—' : `${Math.round(x * 100)} %`);
      const rows = [
        ['Calls made', `${fmtNumber(me.placed.calls)} (${fmtNumber(me.placed.answered)} answered)`],
        ['Calls received', `${fmtNumber(me.received.calls)} (${fmtNumber(me.received.answered)} answered here)`],
        ['Answer rate', pct(me.answer_rate)],
        ['Talk time', fmtDuration(me.placed.talk_seconds + me.received.talk_seconds)],
        ['Average talk', me.average_talk_seconds === null ? '—' : fmtDuration(me.average_talk_seconds)],
      ];
      fill(totalsBox, h('dl', { class: 'kv', id: 'account-totals-list' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
    } catch (e) { showError(totalsBox, e, loadTotals); }
  }

  load();
  const reloadCalls = debounce(loadCalls, 800); // a burst of ended calls: one reload
  const offs = [
    onChange('registration.changed', reloadDevices),
    on('call.ended', (t, c) => { if (c && (c.caller === ext || c.callee === ext)) reloadCalls(); }),
    on('reconnect', reloadDevices),
  ];
  return () => offs.forEach((f) => f());
}
