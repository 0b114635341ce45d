// Voicemail: per account, its messages (caller, time, length, new or heard) to play in the
// page, download as WAV, mark heard or new, and delete; and its greeting (the default one
// sipbx speaks, or a WAV file uploaded here). The list follows voicemail.changed events, so
// a message left while the page is open appears, and the lamp counts follow every change.

import { api, listAll, API } from '../api.js';
import { h, fill, showError, errorBox, toast, confirmDialog, fmtTime, fmtDuration, badge, cut } from '../dom.js';
import { on } from '../events.js';

const MAX_UPLOAD = 16 * 1024 * 1024; // what the server takes (PUT .../voicemail/greeting)

export function render(main, { params, signal, go }) {
  const ext = params[0] || null;
  const enc = ext ? encodeURIComponent(ext) : '';
  const picker = h('select', { id: 'vm-account', name: 'account', 'aria-label': 'Account' }, h('option', { value: '' }, 'Loading…'));
  const summary = h('p', { class: 'vm-summary', id: 'vm-summary', 'aria-live': 'polite' });
  const messagesBox = h('div', { id: 'vm-messages' });
  const greetingBox = h('div', { id: 'vm-greeting' });
  const box = h('div');
  main.append(h('section', { class: 'page' },
    h('h1', null, 'Voicemail'),
    h('div', { class: 'toolbar' }, h('label', { for: 'vm-account' }, 'Account '), picker),
    box));
  picker.addEventListener('change', () => { if (picker.value) go(`/voicemail/${encodeURIComponent(picker.value)}`); });

  (async () => {
    try {
      const users = await listAll('/users', {}, { signal });
      fill(picker, h('option', { value: '', disabled: true, selected: !ext }, 'Choose an account…'),
        users.map((u) => h('option', { value: u.extension, selected: u.extension === ext }, u.display_name ? `${u.extension} — ${u.display_name}` : u.extension)));
      if (!users.length) fill(box, h('p', { class: 'empty' }, 'There are no accounts yet. ', h('a', { href: '#/accounts' }, 'Create one'), ' first.'));
      else if (!ext) fill(box, h('p', { class: 'muted' }, 'Choose the account whose voicemail to open.'));
    } catch (e) { showError(box, e); }
  })();
  if (!ext) return undefined;

  fill(box,
    h('section', { class: 'card', 'aria-labelledby': 'vm-msgs-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'vm-msgs-title' }, 'Messages'), summary),
      h('p', { class: 'muted' }, 'Callers reach this voicemail through the forwarding rules of ', h('a', { href: `#/forwarding/${enc}` }, ext),
        ' set to “Voicemail”. On the phone, dial the voicemail number to listen: 5 plays a message again, 7 deletes it, 6 goes on.'),
      messagesBox),
    h('section', { class: 'card', 'aria-labelledby': 'vm-greet-title' }, h('h2', { id: 'vm-greet-title' }, 'Greeting'), greetingBox));

  let loading = 0;
  async function loadMessages() {
    const seq = ++loading;
    let box;
    try {
      box = await api('GET', `/users/${enc}/voicemail`, { signal });
    } catch (e) {
      if (seq === loading) showError(messagesBox, e.status === 404 ? new Error(`There is no account ${ext}.`) : e, e.status === 404 ? null : loadMessages);
      return;
    }
    if (seq !== loading) return;
    fill(summary, box.new || box.old ? [h('strong', null, `${box.new} new`), `, ${box.old} heard`] : 'No messages');
    drawMessages(box.items);
    if (!greetingBox.firstChild) loadGreeting();
  }

  // The rows keep their <audio> elements across reloads: a message being listened to does
  // not stop because another one arrived.
  const rows = new Map(); // id -> { tr, audio }
  function drawMessages(items) {
    if (!items.length) {
      rows.clear();
      fill(messagesBox, h('p', { class: 'empty' }, 'No messages. When a caller leaves one it appears here at once.'));
      return;
    }
    const keep = new Map();
    const trs = items.map((m) => {
      const old = rows.get(m.id);
      const audio = old ? old.audio : h('audio', { controls: true, preload: 'none', src: m.audio_url, 'aria-label': `Message ${m.id} from ${m.caller}` });
      const tr = messageRow(m, audio);
      keep.set(m.id, { tr, audio });
      return tr;
    });
    rows.clear();
    for (const [k, v] of keep) rows.set(k, v);
    fill(messagesBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table voicemail' },
      h('thead', null, h('tr', null, ['From', 'Received', 'Length', '', 'Listen', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, trs))));
  }

  function messageRow(m, audio) {
    const err = h('div', { class: 'row-error' });
    const heardBtn = h('button', { type: 'button', class: 'btn small' }, m.heard ? 'Mark new' : 'Mark heard');
    const del = h('button', { type: 'button', class: 'btn small danger' }, 'Delete');
    const dl = h('a', { class: 'btn small', href: m.audio_url, download: `voicemail-${ext}-${m.id}.wav` }, 'Download');
    heardBtn.addEventListener('click', () => setHeard(!m.heard));
    // Played to the end: heard, as on the phone.
    audio.onended = () => { if (!m.heard) setHeard(true); };
    async function setHeard(v) {
      fill(err);
      heardBtn.disabled = true;
      try {
        await api('PATCH', `/users/${enc}/voicemail/${m.id}`, { body: { heard: v } });
        m.heard = v;
        loadMessages();
      } catch (e) { fill(err, errorBox(e)); } finally { heardBtn.disabled = false; }
    }
    del.addEventListener('click', async () => {
      if (!(await confirmDialog(`Delete the message from ${m.caller}?`, `Left ${fmtTime(m.received_at)}, ${fmtDuration(m.duration)} long. It cannot be brought back.`, 'Delete'))) return;
      fill(err);
      try {
        await api('DELETE', `/users/${enc}/voicemail/${m.id}`);
        toast('Message deleted');
        loadMessages();
      } catch (e) { fill(err, errorBox(e)); }
    });
    const from = m.caller_name ? [cut(m.caller_name), ' ', h('span', { class: 'muted' }, m.caller)] : m.caller;
    return h('tr', { class: m.heard ? 'heard' : 'new', dataset: { id: String(m.id) } },
      h('td', { class: 'c-from' }, from),
      h('td', { class: 'nowrap' }, fmtTime(m.received_at)),
      h('td', { class: 'nowrap duration' }, m.duration < 1 ? `${m.duration.toFixed(1)} s` : fmtDuration(Math.round(m.duration))),
      h('td', null, m.heard ? badge('heard', 'heard') : badge('new', 'new')),
      h('td', { class: 'c-audio' }, audio),
      h('td', { class: 'c-actions' }, h('div', { class: 'actions' }, heardBtn, dl, del), err));
  }

  async function loadGreeting() {
    let g;
    try {
      g = await api('GET', `/users/${enc}/voicemail/greeting`, { signal });
    } catch (e) { showError(greetingBox, e, loadGreeting); return; }
    const src = `${API}/users/${enc}/voicemail/greeting.wav?v=${encodeURIComponent(g.updated_at || 'default')}`;
    const file = h('input', { type: 'file', id: 'vm-greeting-file', accept: '.wav,audio/wav,audio/x-wav', 'aria-describedby': 'vm-greeting-help' });
    const upload = h('button', { type: 'submit', class: 'btn primary', disabled: true }, 'Upload');
    const err = h('div', { class: 'form-error-slot' });
    file.addEventListener('change', () => { upload.disabled = !file.files.length; fill(err); });
    const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'Upload a greeting' },
      h('div', { class: 'field' }, h('label', { for: 'vm-greeting-file' }, g.greeting === 'custom' ? 'Replace it with a WAV file' : 'Use a recording of your own (WAV file)'), file),
      h('div', { class: 'actions' }, upload), err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = file.files[0];
      if (!f) return;
      if (f.size > MAX_UPLOAD) { fill(err, errorBox(new Error('The file is larger than 16 MiB: a greeting is at most a minute long.'))); return; }
      upload.disabled = true;
      fill(err);
      try {
        await api('PUT', `/users/${enc}/voicemail/greeting`, { raw: f, contentType: 'audio/wav' });
        toast('Greeting uploaded');
        loadGreeting();
      } catch (e) { fill(err, errorBox(e)); upload.disabled = false; }
    });
    let reset = null;
    if (g.greeting === 'custom') {
      reset = h('button', { type: 'button', class: 'btn' }, 'Use the default greeting');
      reset.addEventListener('click', async () => {
        if (!(await confirmDialog('Use the default greeting?', 'The uploaded greeting is deleted.', 'Use the default'))) return;
        try { await api('DELETE', `/users/${enc}/voicemail/greeting`); toast('Default greeting in use'); loadGreeting(); } catch (e) { fill(err, errorBox(e)); }
      });
    }
    fill(greetingBox,
      h('p', { id: 'vm-greeting-kind', dataset: { kind: g.greeting } }, g.greeting === 'custom'
        ? [`Callers hear the greeting uploaded ${fmtTime(g.updated_at)} (${g.duration.toFixed(1)} s), then a tone.`]
        : ['Callers hear sipbx’s default greeting (', h('q', null, 'The person at extension … is not available. Please leave your message after the tone.'), '), then a tone.']),
      h('audio', { controls: true, preload: 'none', src, 'aria-label': 'The greeting' }),
      reset ? h('div', { class: 'actions' }, reset) : null,
      form,
      h('p', { class: 'hint', id: 'vm-greeting-help' }, 'Any WAV file (PCM, A-law or mu-law, mono or stereo, any rate) of half a second to a minute; sipbx converts it to telephone quality.'));
  }

  loadMessages();
  // A burst of changes of this mailbox (a message saved, then heard on the phone) reads it
  // once.
  let timer = 0;
  const soon = () => { clearTimeout(timer); timer = setTimeout(loadMessages, 50); };
  const offs = [
    on('voicemail.changed', (t, d) => { if (d && d.extension === ext) soon(); }),
    on('reconnect', soon),
  ];
  return () => { clearTimeout(timer); offs.forEach((f) => f()); };
}
