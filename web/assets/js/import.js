// Importing accounts from a CSV file (extension,password,display_name with a header row):
// every line is checked here first and shown with what is wrong with it, then the good
// lines go to POST /api/v1/users/import, and the lines the server refused are marked with
// its reason.

import { api, listAll } from './api.js';
import { h, fill, errorBox, toast, charCount, DISPLAY_NAME_MAX, fmtNumber } from './dom.js';
import { EXT_RE } from './users.js';

const PASSWORD_MIN = 4, PASSWORD_MAX = 128;
const BATCH_LINES = 500, BATCH_BYTES = 48 * 1024; // a request body is at most 64 KiB

/** Splits CSV text (RFC 4180: quoted fields may hold commas, quotes doubled, line breaks)
 *  into records, each {line, fields} with the line it starts on (the first is 1). Blank
 *  lines are skipped. */
export function parseCsv(text) {
  const out = [];
  let i = 0, line = 1;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // a byte order mark
  while (i < text.length) {
    const start = line, fields = [];
    let field = '', quoted = false, atStart = true;
    for (; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false;
        else { if (c === '\n') line++; field += c; }
      } else if (c === '"' && atStart) { quoted = true; atStart = false; } else if (c === ',') { fields.push(field); field = ''; atStart = true; } else if (c === '\r' && text[i + 1] === '\n') { continue; } else if (c === '\n' || c === '\r') { i++; line++; break; } else { field += c; atStart = false; }
    }
    fields.push(field);
    if (fields.length > 1 || fields[0].trim() !== '') out.push({ line: start, fields });
  }
  return out;
}

/** Checks records (header first) against the rules of POST /users and against the
 *  extensions that exist; returns {error} for a bad header, else {rows: [{line,
 *  extension, password, display_name, problem}]}. */
export function checkRecords(records, existing) {
  if (!records.length) return { error: 'The file is empty.' };
  const head = records[0].fields.map((f) => f.trim().toLowerCase());
  const col = (...names) => head.findIndex((x) => names.includes(x));
  const ci = col('extension', 'username'), pi = col('password'), ni = col('display_name', 'name');
  if (ci < 0 || pi < 0) {
    return { error: 'The first line must name the columns: extension,password,display_name (display_name may be left out).' };
  }
  const seen = new Map();
  const rows = records.slice(1).map(({ line, fields }) => {
    const r = { line, extension: (fields[ci] || '').trim(), password: fields[pi] || '', display_name: ni >= 0 ? (fields[ni] || '').trim() : '', problem: null };
    const n = charCount(r.display_name);
    if (fields.length !== head.length) r.problem = `${fields.length} fields where the header has ${head.length}`;
    else if (!EXT_RE.test(r.extension)) r.problem = r.extension ? 'bad extension (1 to 32 letters, digits or - _ . ! ~ * \' +)' : 'no extension';
    else if (seen.has(r.extension)) r.problem = `duplicate of line ${seen.get(r.extension)}`;
    else if (existing.has(r.extension)) r.problem = 'the account exists already';
    else if (r.password.length < PASSWORD_MIN) r.problem = `short password (at least ${PASSWORD_MIN} characters)`;
    else if (r.password.length > PASSWORD_MAX) r.problem = `password longer than ${PASSWORD_MAX} characters`;
    else if (n > DISPLAY_NAME_MAX) r.problem = `display name of ${n} characters (at most ${DISPLAY_NAME_MAX})`;
    else if (/[\u0000-\u001f\u007f]/.test(r.display_name + r.password)) r.problem = 'control characters in a field';
    if (EXT_RE.test(r.extension) && !seen.has(r.extension)) seen.set(r.extension, line);
    return r;
  });
  return { rows };
}

function csvLine(fields) {
  return fields.map((f) => (/[",\r\n]/.test(f) || /^\s|\s$/.test(f) ? `"${f.replace(/"/g, '""')}"` : f)).join(',');
}

/** The good rows as CSV bodies of at most BATCH_LINES lines and BATCH_BYTES bytes each. */
function batches(rows) {
  const out = [];
  let cur = null;
  for (const r of rows) {
    const text = csvLine([r.extension, r.password, r.display_name]) + '\r\n';
    if (!cur || cur.rows.length >= BATCH_LINES || cur.bytes + text.length * 3 > BATCH_BYTES) {
      cur = { body: 'extension,password,display_name\r\n', bytes: 40, rows: [] };
      out.push(cur);
    }
    cur.body += text;
    cur.bytes += text.length * 3; // at most 3 bytes of UTF-8 per UTF-16 unit
    cur.rows.push(r);
  }
  return out;
}

/** The import card; onDone() after accounts were created. Returns {el, focus}. */
export function importCard({ onDone }) {
  const text = h('textarea', { id: 'import-text', name: 'csv', spellcheck: 'false', 'aria-describedby': 'import-hint',
    placeholder: 'extension,password,display_name\n200,a-long-secret,Alice\n201,another-secret,"Smith, Bob"' });
  const file = h('input', { type: 'file', id: 'import-file', accept: '.csv,text/csv,text/plain' });
  const check = h('button', { type: 'button', class: 'btn' }, 'Check');
  const create = h('button', { type: 'button', class: 'btn primary', id: 'import-create', disabled: true }, 'Create accounts');
  const summary = h('div', { class: 'import-summary', id: 'import-summary', role: 'status' });
  const preview = h('div', { id: 'import-preview' });
  const el = h('section', { class: 'card', id: 'import-card', 'aria-labelledby': 'import-title' },
    h('h2', { id: 'import-title' }, 'Import accounts from CSV'),
    h('p', { class: 'hint', id: 'import-hint' }, 'One account a line, with a header: ', h('code', null, 'extension,password,display_name'),
      `. Passwords of at least ${PASSWORD_MIN} characters, names of at most ${DISPLAY_NAME_MAX}. Every line is checked before anything is created.`),
    h('div', { class: 'field' }, h('label', { for: 'import-file' }, 'CSV file'), file),
    h('div', { class: 'field' }, h('label', { for: 'import-text' }, 'or paste the lines'), text),
    h('div', { class: 'actions' }, check, create),
    summary, preview);

  let good = [], rows = [];

  function draw() {
    if (!rows.length) { fill(preview); return; }
    fill(preview, h('div', { class: 'import-preview' }, h('table', { class: 'table import-table' },
      h('thead', null, h('tr', null, ['Line', 'Extension', 'Display name', 'Password', 'Check'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows.map((r) => h('tr', { class: r.problem ? 'bad' : r.created ? 'ok' : null, dataset: { line: String(r.line) } },
        h('td', { class: 'num' }, String(r.line)),
        h('td', null, r.extension),
        h('td', null, r.display_name),
        h('td', { class: 'muted' }, r.password ? `${'•'.repeat(Math.min(8, r.password.length))} (${r.password.length})` : '—'),
        h('td', { class: r.problem ? 'why' : null }, r.problem ? r.problem : r.created ? 'created' : 'ok')))))));
  }

  async function runCheck() {
    fill(summary);
    create.disabled = true;
    const records = parseCsv(text.value);
    let existing;
    try {
      existing = new Set((await listAll('/users', {}, { max: 100000 })).map((u) => u.extension));
    } catch (e) { fill(summary, errorBox(e, runCheck)); return; }
    const res = checkRecords(records, existing);
    if (res.error) { rows = []; draw(); fill(summary, h('p', { class: 'field-error form-level', role: 'alert' }, res.error)); return; }
    rows = res.rows;
    good = rows.filter((r) => !r.problem);
    const bad = rows.length - good.length;
    fill(summary, h('p', null, h('strong', null, `${fmtNumber(good.length)} to create`),
      bad ? [', ', h('strong', { class: 'field-error' }, `${fmtNumber(bad)} with a problem`), ' (not created; fix them and check again)'] : null, '.'));
    create.textContent = `Create ${fmtNumber(good.length)} account${good.length === 1 ? '' : 's'}`;
    create.disabled = !good.length;
    draw();
  }

  async function runCreate() {
    create.disabled = check.disabled = true;
    let created = 0;
    const byExt = new Map(good.map((r) => [r.extension, r]));
    try {
      for (const b of batches(good)) {
        fill(summary, h('p', null, `Creating… ${fmtNumber(created)} of ${fmtNumber(good.length)}`));
        const res = await api('POST', '/users/import', { raw: b.body, contentType: 'text/csv; charset=utf-8' });
        created += res.created || 0;
        const refused = new Set();
        for (const rej of res.rejected || []) {
          const r = byExt.get(rej.extension);
          if (r) { r.problem = `refused by sipbx: ${rej.reason}`; refused.add(r); }
        }
        for (const r of b.rows) if (!refused.has(r)) r.created = true;
      }
    } catch (e) {
      fill(summary, errorBox(e.status === 404 || e.status === 405 ? new Error('this sipbx cannot import accounts (no POST /api/v1/users/import): create them one by one') : e));
      draw();
      check.disabled = false;
      if (created) onDone();
      return;
    }
    const refused = rows.filter((r) => r.problem).length;
    fill(summary, h('p', { id: 'import-result' }, h('strong', null, `${fmtNumber(created)} account${created === 1 ? '' : 's'} created`),
      refused ? `, ${fmtNumber(refused)} line${refused === 1 ? '' : 's'} not (see below).` : '.'));
    toast(`${created} account${created === 1 ? '' : 's'} imported`);
    good = [];
    create.disabled = true;
    check.disabled = false;
    draw();
    if (created) onDone();
  }

  file.addEventListener('change', async () => {
    if (!file.files.length) return;
    text.value = await file.files[0].text();
    runCheck();
  });
  check.addEventListener('click', runCheck);
  create.addEventListener('click', runCreate);
  text.addEventListener('input', () => { create.disabled = true; });
  return { el, focus: () => file.focus() };
}
