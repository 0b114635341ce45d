// Tokens and settings: API tokens (create: shown once; revoke), the addresses blocked for
// failed SIP digest checks (lift), the webhooks (pages/webhooks.js), and the server's
// settings (domain, ports, ring timeout, HTTPS and SIP over TLS with the certificate's
// fingerprint to pin) as the daemon runs with them.

import { api, listAll } from '../api.js';
import { h, fill, errorBox, showError, toast, confirmDialog, copyField, fmtTime, fmtRelative, showFormError, clearFormErrors, fieldError, badge } from '../dom.js';
import { getSettings } from '../app.js';
import { webhooksCard } from './webhooks.js';

export function render(main, { signal }) {
  const settingsBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const tokensBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const blocksBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const newTokenBox = h('div');
  const name = h('input', { id: 'tok-name', name: 'name', required: true, maxlength: 64, autocomplete: 'off', placeholder: 'e.g. monitoring' });
  const create = h('button', { type: 'submit', class: 'btn primary' }, 'Create token');
  const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'New API token' },
    h('div', { class: 'field' }, h('label', { for: 'tok-name' }, 'New token name'), name),
    h('div', { class: 'actions' }, create),
    h('div', { class: 'form-error-slot' }));

  main.append(h('section', { class: 'page' },
    h('h1', null, 'Tokens & settings'),
    h('section', { class: 'card' }, h('h2', null, 'API tokens'),
      h('p', { class: 'muted' }, 'Scripts and monitoring authenticate with ', h('code', null, 'Authorization: Bearer TOKEN'), '. A token is shown once, when it is created.'),
      form, newTokenBox, tokensBox),
    h('section', { class: 'card' }, h('h2', null, 'Blocked addresses'),
      h('p', { class: 'muted' }, 'Addresses that failed SIP digest checks too often. Their requests are dropped until the block ends or is lifted.'),
      blocksBox),
    webhooksCard({ signal }),
    h('section', { class: 'card' }, h('h2', null, 'Server'), settingsBox)));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const n = name.value.trim();
    if (!n) { fieldError(name, 'Give the token a name that says who uses it.'); name.focus(); return; }
    create.disabled = true;
    try {
      const t = await api('POST', '/tokens', { body: { name: n } });
      name.value = '';
      fill(newTokenBox, h('div', { class: 'secret', id: 'new-token' },
        h('p', null, h('strong', null, `Token “${t.name}” — shown only now. `), 'Copy it; sipbx keeps only its hash.'),
        copyField(t.token, 'New API token')));
      toast('Token created');
      loadTokens();
    } catch (e) { showFormError(form, e); } finally { create.disabled = false; }
  });

  async function loadTokens() {
    try {
      const items = await listAll('/tokens', {}, { signal });
      if (!items.length) { fill(tokensBox, h('p', { class: 'empty' }, 'No tokens yet.')); return; }
      fill(tokensBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table tokens' },
        h('thead', null, h('tr', null, ['Name', 'Created', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map((t) => {
          const b = h('button', { type: 'button', class: 'btn small danger' }, 'Revoke');
          const err = h('div', { class: 'row-error' });
          b.addEventListener('click', async () => {
            if (!(await confirmDialog(`Revoke “${t.name}”?`, 'Whatever uses this token stops working at once.', 'Revoke'))) return;
            fill(err);
            try { await api('DELETE', `/tokens/${t.id}`); toast('Token revoked'); loadTokens(); } catch (e) { fill(err, errorBox(e)); }
          });
          return h('tr', { dataset: { id: String(t.id) } },
            h('td', null, t.name),
            h('td', { class: 'nowrap' }, fmtTime(t.created_at)),
            h('td', { class: 'nowrap' }, fmtRelative(t.last_used_at)),
            h('td', null, b, err));
        })))));
    } catch (e) { showError(tokensBox, e, loadTokens); }
  }

  // The fingerprint in full (it is compared by eye), with a button that copies it.
  function fingerprint(fp) {
    const code = h('code', { class: 'fingerprint' }, fp);
    const btn = h('button', { type: 'button', class: 'btn small' }, 'Copy');
    btn.addEventListener('click', async () => {
      let ok = false;
      try {
        if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(fp); ok = true; }
      } catch { /* fall back below */ }
      if (!ok) {
        const range = document.createRange();
        range.selectNodeContents(code);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        try { ok = document.execCommand('copy'); } catch { ok = false; }
      }
      btn.textContent = ok ? 'Copied' : 'Press Ctrl+C';
      setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
    });
    return [code, ' ', btn];
  }

  // A certificate in use: what to pin (the fingerprint) and when it ends.
  function certificate(uses, c) {
    const rows = [
      ['SHA-256 fingerprint', fingerprint(c.fingerprint_sha256)],
      ['Subject', c.subject],
      ['Names', (c.names || []).join(', ') || '—'],
      ['Valid until', [fmtTime(c.not_after), c.expired ? [' ', badge('expired', 'failed')] : null]],
      ['File', `${c.file}${c.generated ? ' (self-signed, generated by sipbx)' : ''}`],
    ];
    return h('div', { class: 'cert', dataset: { fingerprint: c.fingerprint_sha256 } },
      h('h3', null, `Certificate of ${uses.join(' and ')}`),
      h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
  }

  async function loadSettings() {
    try {
      const st = await getSettings({ fresh: true, signal });
      const sip = st.sip || {}, http = st.http || {}, https = st.https || {}, tr = st.trace || {};
      const rows = [
        ['Domain (SIP realm)', st.domain],
        ['SIP', `${sip.address || '0.0.0.0'}:${sip.port} (${(sip.transports || []).map((t) => String(t).toUpperCase()).join(', ')})`],
        ['SIP over TLS', sip.tls_port ? `${sip.tls_address || '0.0.0.0'}:${sip.tls_port}` : 'off'],
        ['HTTP', `${http.address || '0.0.0.0'}:${http.port}${https.enabled ? ' (redirects to HTTPS)' : ''}`],
        ['HTTPS', https.enabled ? `${https.address || '0.0.0.0'}:${https.port}` : 'off'],
        ['Ring timeout', `${st.ring_timeout} s`],
        ['Registration expiry', `${st.min_expires}–${st.max_expires} s`],
        ['SIP traces', tr.enabled === false ? 'off' : `kept ${tr.days ? tr.days + ' days' : 'without age limit'}, at most ${tr.max_mb ? tr.max_mb + ' MiB' : 'unlimited'}`],
        ['Version', st.version],
      ];
      // One block per certificate: SIP over TLS and HTTPS usually share one.
      const certs = [];
      for (const [use, c] of [['SIP over TLS', sip.certificate], ['HTTPS', https.certificate]]) {
        if (!c) continue;
        const same = certs.find((x) => x.c.fingerprint_sha256 === c.fingerprint_sha256);
        if (same) same.uses.push(use); else certs.push({ uses: [use], c });
      }
      fill(settingsBox, h('dl', { class: 'kv', id: 'settings' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v === undefined || v === null ? '—' : String(v))])),
        certs.length ? h('div', { id: 'certificates' }, certs.map((x) => certificate(x.uses, x.c)),
          h('p', { class: 'hint' }, 'Phones and browsers that do not trust this certificate can pin its fingerprint: compare it with what they show before you accept it.')) : null,
        h('p', { class: 'hint' }, 'These come from the configuration file and the command line; change them there and restart sipbx.'));
    } catch (e) { showError(settingsBox, e, loadSettings); }
  }

  async function loadBlocks() {
    try {
      const { items } = await api('GET', '/security/blocks', { signal });
      if (!items.length) { fill(blocksBox, h('p', { class: 'empty' }, 'No address is blocked.')); return; }
      fill(blocksBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table blocks' },
        h('thead', null, h('tr', null, ['Address', 'Reason', 'Extensions tried', 'Since', 'Until', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map((b) => {
          const lift = h('button', { type: 'button', class: 'btn small' }, 'Lift');
          const err = h('div', { class: 'row-error' });
          lift.addEventListener('click', async () => {
            if (!(await confirmDialog(`Lift the block of ${b.source}?`, 'Its requests are answered again at once; more failed checks block it again.', 'Lift'))) return;
            fill(err);
            try { await api('DELETE', `/security/blocks/${encodeURIComponent(b.source)}`); toast('Block lifted'); loadBlocks(); } catch (e) { fill(err, errorBox(e)); }
          });
          return h('tr', { dataset: { source: b.source } },
            h('td', { class: 'nowrap' }, h('code', null, b.source)),
            h('td', null, b.offences > 1 ? `${b.reason} (block ${b.offences}, doubled)` : b.reason),
            h('td', null, b.extensions.join(', ') || '—'),
            h('td', { class: 'nowrap' }, fmtTime(b.since)),
            h('td', { class: 'nowrap' }, fmtTime(b.until)),
            h('td', null, lift, err));
        })))));
    } catch (e) { showError(blocksBox, e, loadBlocks); }
  }

  loadTokens();
  loadBlocks();
  loadSettings();
}
