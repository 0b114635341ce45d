// The Webhooks block of the settings page: the URLs sipbx POSTs events to (add: the secret
// is shown once; send a test event; delete), and each webhook's delivery log (state,
// tries, the receiver's last answer, the next try). The list refreshes itself while the
// page is open, so a delivery's progress shows without reloading.

import { api } from '../api.js';
import { h, fill, errorBox, showError, toast, confirmDialog, copyField, fmtTime, badge, showFormError, clearFormErrors, fieldError } from '../dom.js';

const EVENTS = [
  ['call.new', 'A call starts'],
  ['call.answered', 'A call is answered'],
  ['call.ended', 'A call ends (its call record)'],
  ['registration.changed', 'A phone registers or goes'],
  ['user.changed', 'An account is created, changed or deleted'],
];
const REFRESH_MS = 5000;
const LOG_PAGE = 20;

const STATE_KIND = { pending: 'trying', delivered: 'answered', failed: 'failed' };

function stateBadge(state) {
  return badge(state, STATE_KIND[state] || state);
}

/** What the receiver answered last: its HTTP status, or why there was none. */
function outcome(d) {
  if (!d.attempts) return 'not tried yet';
  const status = d.last_status ? `HTTP ${d.last_status}` : '';
  return d.last_error && d.last_error !== status ? [status, status ? ': ' : '', d.last_error] : status;
}

/** The webhooks card; signal ends its refreshing when the page goes. */
export function webhooksCard({ signal }) {
  const listBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const newBox = h('div');
  const url = h('input', { id: 'hook-url', name: 'url', type: 'url', required: true, maxlength: 2048, autocomplete: 'off', placeholder: 'https://crm.example.com/hooks/pbx' });
  const desc = h('input', { id: 'hook-desc', name: 'description', maxlength: 255, autocomplete: 'off', placeholder: 'e.g. CRM' });
  const boxes = EVENTS.map(([name, label]) => {
    const id = 'hook-ev-' + name.replace('.', '-');
    return { name, input: h('input', { id, type: 'checkbox', value: name, checked: name === 'call.ended' }), label: h('label', { for: id }, h('code', null, name), ' — ', label) };
  });
  const events = h('fieldset', { class: 'events', name: 'events' },
    h('legend', null, 'Events'),
    boxes.map((b) => h('div', { class: 'field check' }, b.input, b.label)));
  const add = h('button', { type: 'submit', class: 'btn primary' }, 'Add webhook');
  const form = h('form', { class: 'hook-form', novalidate: true, 'aria-label': 'New webhook' },
    h('div', { class: 'inline-form' },
      h('div', { class: 'field grow' }, h('label', { for: 'hook-url' }, 'URL'), url),
      h('div', { class: 'field' }, h('label', { for: 'hook-desc' }, 'Description (optional)'), desc)),
    events,
    h('div', { class: 'actions' }, add),
    h('div', { class: 'form-error-slot' }));
  const open = new Set(); // webhooks whose log is shown
  const logs = new Map(); // id -> the log's box, kept across refreshes

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const u = url.value.trim();
    if (!/^https?:\/\/[^/\s]/i.test(u)) { fieldError(url, 'An http:// or https:// URL of the receiver.'); url.focus(); return; }
    const chosen = boxes.filter((b) => b.input.checked).map((b) => b.name);
    if (!chosen.length) { fieldError(boxes[0].input, 'Choose at least one event.'); boxes[0].input.focus(); return; }
    add.disabled = true;
    try {
      const w = await api('POST', '/webhooks', { body: { url: u, events: chosen, description: desc.value.trim() } });
      url.value = '';
      desc.value = '';
      fill(newBox, h('div', { class: 'secret', id: 'new-webhook-secret' },
        h('p', null, h('strong', null, 'Secret of the new webhook — shown only now. '),
          'Each delivery carries X-Sipbx-Signature: sha256= and the HMAC-SHA256 of its body with this secret; keep it with the receiver.'),
        copyField(w.secret, 'Webhook secret')));
      toast('Webhook added');
      load();
    } catch (e) {
      showFormError(form, e);
    } finally {
      add.disabled = false;
    }
  });

  async function loadLog(id, box, before) {
    try {
      const page = await api('GET', `/webhooks/${id}/deliveries`, { query: { limit: LOG_PAGE, cursor: before }, signal });
      if (!page.items.length) { fill(box, h('p', { class: 'empty' }, 'No deliveries yet.')); return; }
      const older = page.next_cursor ? h('button', { type: 'button', class: 'btn small' }, 'Older') : null;
      if (older) older.addEventListener('click', () => loadLog(id, box, page.next_cursor));
      const newest = before ? h('button', { type: 'button', class: 'btn small' }, 'Newest') : null;
      if (newest) newest.addEventListener('click', () => loadLog(id, box));
      box.dataset.before = before || '';
      fill(box, h('div', { class: 'table-wrap' }, h('table', { class: 'table deliveries' },
        h('caption', { class: 'sr-only' }, 'Delivery log'),
        h('thead', null, h('tr', null, ['Event', 'State', 'Tries', 'Last answer', 'Next try', 'Happened'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, page.items.map((d) => h('tr', { dataset: { id: String(d.id), event: d.event, state: d.state } },
          h('td', null, h('code', null, d.event)),
          h('td', null, stateBadge(d.state)),
          h('td', { class: 'num' }, String(d.attempts)),
          h('td', { class: 'outcome' }, outcome(d)),
          h('td', { class: 'nowrap' }, d.state === 'pending' ? fmtTime(d.next_try_at) : '—'),
          h('td', { class: 'nowrap' }, fmtTime(d.created_at))))))),
      (older || newest) ? h('div', { class: 'actions' }, newest, older) : null);
    } catch (e) {
      showError(box, e, () => loadLog(id, box, before));
    }
  }

  function row(w) {
    const ping = h('button', { type: 'button', class: 'btn small' }, 'Send test');
    const toggle = h('button', { type: 'button', class: 'btn small', 'aria-expanded': open.has(w.id) ? 'true' : 'false' }, open.has(w.id) ? 'Hide log' : 'Delivery log');
    const del = h('button', { type: 'button', class: 'btn small danger' }, 'Delete');
    const err = h('div', { class: 'row-error' });
    ping.addEventListener('click', async () => {
      fill(err);
      try {
        await api('POST', `/webhooks/${w.id}/ping`);
        toast('Test event queued');
        open.add(w.id);
        load();
      } catch (e) { fill(err, errorBox(e)); }
    });
    toggle.addEventListener('click', () => {
      if (open.has(w.id)) open.delete(w.id); else open.add(w.id);
      load();
    });
    del.addEventListener('click', async () => {
      if (!(await confirmDialog('Delete this webhook?', `${w.url} gets no more events; its deliveries that are still waiting are dropped.`, 'Delete'))) return;
      fill(err);
      try {
        await api('DELETE', `/webhooks/${w.id}`);
        open.delete(w.id);
        logs.delete(w.id);
        toast('Webhook deleted');
        load();
      } catch (e) { fill(err, errorBox(e)); }
    });
    const d = w.deliveries;
    const last = w.last_delivery;
    const rows = [h('tr', { dataset: { id: String(w.id) } },
      h('td', { class: 'url' }, h('span', { class: 'mono' }, w.url), w.description ? h('span', { class: 'ua' }, w.description) : null),
      h('td', null, w.events.map((e) => h('code', { class: 'event' }, e))),
      h('td', { class: 'counts' },
        `${d.delivered} delivered`, d.pending ? [', ', h('strong', null, `${d.pending} waiting`)] : null,
        d.failed ? [', ', h('strong', { class: 'failed' }, `${d.failed} failed`)] : null,
        last ? h('span', { class: 'ua' }, 'Last: ', h('code', null, last.event), ' ', stateBadge(last.state), last.attempts && last.state !== 'delivered' ? [' ', outcome(last)] : null) : null),
      h('td', { class: 'actions-cell' }, ping, toggle, del, err))];
    if (open.has(w.id)) {
      if (!logs.has(w.id)) logs.set(w.id, h('div', { class: 'delivery-log', id: `hook-log-${w.id}` }, h('p', { class: 'muted' }, 'Loading…')));
      const box = logs.get(w.id);
      rows.push(h('tr', { class: 'log-row' }, h('td', { colspan: 4 }, box)));
      loadLog(w.id, box, box.dataset.before || undefined);
    }
    return rows;
  }

  async function load() {
    try {
      const { items } = await api('GET', '/webhooks', { signal });
      if (!items.length) { fill(listBox, h('p', { class: 'empty' }, 'No webhooks yet.')); return; }
      fill(listBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table webhooks' },
        h('thead', null, h('tr', null, ['URL', 'Events', 'Deliveries', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, items.map(row)))));
    } catch (e) { showError(listBox, e, load); }
  }

  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  signal.addEventListener('abort', () => clearInterval(timer));

  return h('section', { class: 'card', id: 'webhooks' }, h('h2', null, 'Webhooks'),
    h('p', { class: 'muted' }, 'sipbx POSTs the events chosen to each URL as JSON, signed with the webhook\'s secret, and tries again with growing pauses when the receiver does not answer 2xx (8 tries over about 5 hours). Redirects are not followed: give the final URL, on a network you trust.'),
    form, newBox, listBox);
}
