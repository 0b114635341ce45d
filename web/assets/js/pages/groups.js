// Ring groups: extensions of their own that ring several accounts, all at once or one after
// another, and then, when nobody answered, a no-answer target. The list (members by name),
// and one form to create or change a group: members picked from the accounts by search
// (the API pages them, so a thousand accounts are as quick as ten), in the order they ring.

import { api } from '../api.js';
import { h, fill, showError, toast, confirmDialog, showFormError, clearFormErrors, fieldError, clearFieldError, cut,
  displayNameInput, debounce, errorBox, fmtNumber } from '../dom.js';
import { on } from '../events.js';
import { EXT_RE, dndBadge } from '../users.js';

const MEMBERS_MAX = 32; // STORE_GROUP_MEMBERS_MAX (server/store/store.h)
const TIMEOUT_MIN = 1, TIMEOUT_MAX = 300, TIMEOUT_DEFAULT = 15;
const RESULTS = 8; // accounts the member search shows at once
const FETCH_PARALLEL = 6; // accounts looked up at once for their names

const STRATEGIES = {
  ringall: { title: 'Ring all', help: 'Every member rings at once; the first to answer takes the call.' },
  sequential: { title: 'One after another', help: 'Members ring in turn, in the order below, each for the member timeout; busy ones are skipped.' },
};

/** An error text for no-answer target t of group ext, or null when it is fine ("" is:
 *  the call then ends unanswered). */
function targetProblem(t, ext) {
  if (!t) return null;
  if (/^sips?:/i.test(t)) return /^sips?:[^\s@<>"]+(@[^\s@<>"]+)?$/i.test(t) ? null : 'A SIP address looks like sip:user@host.';
  if (!EXT_RE.test(t)) return 'An extension or ring group is 1 to 32 letters or digits; a SIP address starts with sip:.';
  if (t === ext) return 'A group cannot send its unanswered calls to itself.';
  return null;
}

/** Accounts by extension, fetched once each for their names (null: no such account). */
function accountCache(signal) {
  const known = new Map();
  return {
    get: (ext) => known.get(ext),
    put: (u) => known.set(u.extension, u),
    /** Fetches the accounts of exts not known yet, a few at a time. */
    async load(exts) {
      const want = [...new Set(exts)].filter((e) => !known.has(e));
      let i = 0;
      const worker = async () => {
        while (i < want.length) {
          const ext = want[i++];
          try {
            known.set(ext, await api('GET', `/users/${encodeURIComponent(ext)}`, { signal }));
          } catch (e) {
            if (e.name === 'AbortError') throw e;
            known.set(ext, e.status === 404 ? null : undefined);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(FETCH_PARALLEL, want.length) }, worker));
    },
  };
}

/** A member as a chip: "Alice 101", with DND or disabled marked (such members are skipped). */
function memberChip(ext, user) {
  const name = user && user.display_name;
  const off = user && !user.enabled;
  return h('span', { class: ['chip', off ? 'off' : null], title: off ? `${ext} is disabled: skipped` : user && user.dnd ? `${ext} has do not disturb on: skipped` : null },
    name ? [cut(name, { cls: 'name', inline: true }), ' '] : null,
    h('span', { class: 'ext' }, ext),
    user && user.dnd ? [' ', dndBadge(user)] : null,
    off ? h('span', { class: 'muted small' }, ' (disabled)') : null);
}

/** A no-answer target as text: "Bob 103", "ring group Sales 601", or the SIP address. */
function targetText(t, accounts, groups) {
  if (!t) return h('span', { class: 'muted' }, 'none (the call ends)');
  const g = groups.find((x) => x.extension === t);
  if (g) return h('span', null, h('span', { class: 'muted' }, 'group '), g.name ? [cut(g.name, { inline: true, cls: 'name' }), ' '] : null, h('a', { href: `#/groups/${encodeURIComponent(t)}` }, t));
  const u = accounts.get(t);
  if (u) return h('span', null, u.display_name ? [cut(u.display_name, { inline: true, cls: 'name' }), ' '] : null, t);
  return cut(t, { tag: 'code', inline: true });
}

export function render(main, ctx) {
  return ctx.params[0] ? renderOne(main, ctx) : renderList(main, ctx);
}

function renderList(main, { signal }) {
  const accounts = accountCache(signal);
  let groups = [];
  const listBox = h('div', { id: 'groups-list' }, h('p', { class: 'muted' }, 'Loading…'));
  const newBtn = h('button', { type: 'button', class: 'btn primary', id: 'new-group-btn', 'aria-expanded': 'false', 'aria-controls': 'group-form' }, 'New ring group');
  const formBox = h('div', { hidden: true });
  main.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Ring groups'), h('div', { class: 'actions' }, newBtn)),
    formBox, listBox));

  function openForm() {
    fill(formBox, groupForm({ accounts, groups, signal,
      onSaved: (g) => { closeForm(); toast(`Ring group ${g.extension} created`); load(); },
      onCancel: () => { closeForm(); newBtn.focus(); } }));
    formBox.hidden = false;
    newBtn.setAttribute('aria-expanded', 'true');
    formBox.querySelector('input').focus();
  }
  function closeForm() {
    formBox.hidden = true;
    fill(formBox);
    newBtn.setAttribute('aria-expanded', 'false');
  }
  newBtn.addEventListener('click', () => (formBox.hidden ? openForm() : closeForm()));

  function draw() {
    if (!groups.length) {
      const start = h('button', { type: 'button', class: 'link' }, 'Create the first one');
      start.addEventListener('click', openForm);
      fill(listBox, h('div', { class: 'card empty-state', id: 'no-groups' },
        h('h2', null, 'No ring groups yet'),
        h('p', null, 'A ring group is an extension of its own, say 600 for Sales, that rings several accounts: ',
          h('strong', null, 'all at once'), ' (the first to answer takes the call) or ', h('strong', null, 'one after another'),
          '. When nobody answers, the call can go on to another extension, group or SIP address.'),
        h('p', null, 'Phones call it like any extension, and forwarding rules can send calls to it. ', start, '.')));
      return;
    }
    fill(listBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table groups' },
      h('thead', null, h('tr', null, ['Extension', 'Name', 'Strategy', 'Members', 'Rings', 'If nobody answers', ''].map((t) =>
        h('th', { scope: 'col' }, t || h('span', { class: 'sr' }, 'Actions'))))),
      h('tbody', null, groups.map(row)))));
  }

  function row(g) {
    const enc = encodeURIComponent(g.extension);
    const del = h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete ring group ${g.extension}` }, 'Delete');
    const err = h('div', { class: 'row-error' });
    del.addEventListener('click', async () => {
      fill(err);
      try {
        if (await deleteGroup(g)) load();
      } catch (e) { fill(err, errorBox(e)); }
    });
    const seq = g.strategy === 'sequential';
    return h('tr', { dataset: { ext: g.extension } },
      h('td', { class: 'c-ext' }, h('a', { href: `#/groups/${enc}`, class: 'ext-link' }, g.extension)),
      h('td', { class: 'c-name' }, g.name ? cut(g.name, { cls: 'name' }) : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'c-strategy nowrap' }, h('span', { class: ['badge', seq ? 'b-sequential' : 'b-ringall'] }, STRATEGIES[g.strategy] ? STRATEGIES[g.strategy].title : g.strategy)),
      h('td', { class: 'c-members' }, g.members.length
        ? h(seq ? 'ol' : 'ul', { class: ['chips', seq ? 'ordered' : null], 'aria-label': seq ? 'Members in the order they ring' : 'Members' },
          g.members.map((m) => h('li', null, memberChip(m, accounts.get(m)))))
        : h('span', { class: 'muted' }, 'no members')),
      h('td', { class: 'c-timeout nowrap', dataset: { label: 'Rings' }, title: seq ? 'each member rings this long' : 'the members ring this long before the no-answer target' },
        `${g.member_timeout} s${seq ? ' each' : ''}`),
      h('td', { class: 'c-target', dataset: { label: 'If nobody answers' } }, targetText(g.no_answer_target, accounts, groups)),
      h('td', { class: 'actions-cell' },
        h('a', { class: 'btn small', href: `#/groups/${enc}`, 'aria-label': `Edit ring group ${g.extension}` }, 'Edit'), del, err));
  }

  async function load() {
    try {
      groups = (await api('GET', '/groups', { signal })).items;
      await accounts.load(groups.flatMap((g) => [...g.members, ...(g.no_answer_target && EXT_RE.test(g.no_answer_target) ? [g.no_answer_target] : [])])
        .filter((e) => !groups.some((x) => x.extension === e)));
      draw();
    } catch (e) { showError(listBox, e, load); }
  }

  load();
  const off = on('reconnect', load);
  return () => off();
}

function renderOne(main, { params, signal, go }) {
  const ext = params[0];
  const accounts = accountCache(signal);
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('section', { class: 'page' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/groups' }, 'Ring groups'), ' / ', ext),
    h('div', { class: 'page-head' }, h('h1', null, 'Ring group ', ext)),
    body));

  async function load() {
    let group, groups;
    try {
      [group, groups] = await Promise.all([api('GET', `/groups/${encodeURIComponent(ext)}`, { signal }), api('GET', '/groups', { signal })]);
      await accounts.load(group.members);
    } catch (e) {
      showError(body, e.status === 404 ? new Error(`There is no ring group ${ext}.`) : e, e.status === 404 ? null : load);
      return;
    }
    const del = h('button', { type: 'button', class: 'btn danger' }, `Delete ${ext}`);
    const err = h('div');
    del.addEventListener('click', async () => {
      fill(err);
      try {
        if (await deleteGroup(group)) go('/groups');
      } catch (e) { fill(err, errorBox(e)); }
    });
    fill(body,
      groupForm({ group, accounts, groups: groups.items, signal,
        onSaved: (g) => { toast(`Ring group ${g.extension} saved`); go('/groups'); },
        onCancel: () => go('/groups') }),
      h('section', { class: 'card danger-zone' }, h('h2', null, 'Delete this ring group'),
        h('p', null, `Calls to ${ext} then find no one. The accounts stay; forwarding rules that name ${ext} stop working.`), del, err));
  }
  load();
}

/** Asks, then deletes group g. Resolves true once deleted, false when the admin said no;
 *  rejects with the ApiError. */
async function deleteGroup(g) {
  if (!(await confirmDialog(`Delete ring group ${g.extension}?`,
    `${g.name ? g.name + ': c' : 'C'}alls to ${g.extension} then find no one. Its ${g.members.length} member account${g.members.length === 1 ? '' : 's'} stay as they are.`))) return false;
  await api('DELETE', `/groups/${encodeURIComponent(g.extension)}`);
  toast(`Ring group ${g.extension} deleted`);
  return true;
}

/** The form of a new group (group null) or of group: onSaved(group as the API answered). */
function groupForm({ group = null, accounts, groups, signal, onSaved, onCancel }) {
  const editing = !!group;
  const g = group || { extension: '', name: '', strategy: 'ringall', members: [], member_timeout: TIMEOUT_DEFAULT, no_answer_target: null };
  const ext = editing ? null : h('input', { id: 'g-ext', name: 'extension', required: true, maxlength: 32, autocomplete: 'off', placeholder: 'e.g. 600', spellcheck: 'false' });
  const dn = displayNameInput('g-name', g.name || '', { placeholder: 'e.g. Sales' });
  dn.input.name = 'name'; // the API's field: its errors land here
  const radios = Object.entries(STRATEGIES).map(([key, s]) => {
    const r = h('input', { type: 'radio', id: `g-strat-${key}`, name: 'strategy', value: key, checked: g.strategy === key, 'aria-describedby': `g-strat-${key}-help` });
    return { key, r, el: h('div', { class: 'radio' }, r, h('label', { for: `g-strat-${key}` }, s.title),
      h('p', { class: 'hint', id: `g-strat-${key}-help` }, s.help)) };
  });
  const strategy = () => (radios.find((x) => x.r.checked) || radios[0]).key;
  const picker = memberPicker(g.members, accounts, signal, strategy);
  for (const { r } of radios) r.addEventListener('change', () => { picker.redraw(); timeoutHelp.textContent = timeoutText(); });
  const timeout = h('input', { id: 'g-timeout', name: 'member_timeout', type: 'number', min: TIMEOUT_MIN, max: TIMEOUT_MAX, inputmode: 'numeric', value: g.member_timeout, 'aria-describedby': 'g-timeout-help' });
  const timeoutText = () => (strategy() === 'sequential'
    ? 'How long each member rings before the next one is tried (1 to 300).'
    : 'How long the members ring before the no-answer target takes the call (1 to 300); without a target they ring for the server\'s ring timeout.');
  const timeoutHelp = h('p', { class: 'hint', id: 'g-timeout-help' }, timeoutText());
  const others = groups.filter((x) => x.extension !== g.extension);
  const target = h('input', { id: 'g-target', name: 'no_answer_target', value: g.no_answer_target || '', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'extension, group or sip:user@host', 'aria-describedby': 'g-target-help', list: others.length ? 'g-target-groups' : null });
  const save = h('button', { type: 'submit', class: 'btn primary' }, editing ? 'Save' : 'Create');
  const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
  cancel.addEventListener('click', onCancel);

  const f = h('form', { class: 'card group-form', id: 'group-form', novalidate: true, 'aria-label': editing ? `Ring group ${g.extension}` : 'New ring group' },
    h('h2', null, editing ? 'Settings' : 'New ring group'),
    h('div', { class: 'group-grid' },
      editing ? null : h('div', { class: 'field' }, h('label', { for: 'g-ext' }, 'Extension'), ext,
        h('p', { class: 'hint' }, 'What phones dial: not one of an account or another group.')),
      h('div', { class: 'field' }, h('label', { for: 'g-name' }, 'Name'), dn.input, dn.counter)),
    h('fieldset', { class: 'field strategies' }, h('legend', null, 'Strategy'), radios.map((x) => x.el)),
    picker.el,
    h('div', { class: 'group-grid' },
      h('div', { class: 'field' }, h('label', { for: 'g-timeout' }, 'Member timeout (seconds)'), timeout, timeoutHelp),
      h('div', { class: 'field' }, h('label', { for: 'g-target' }, 'If nobody answers, send to'), target,
        others.length ? h('datalist', { id: 'g-target-groups' }, others.map((x) => h('option', { value: x.extension }, x.name ? `group ${x.name}` : 'ring group'))) : null,
        h('p', { class: 'hint', id: 'g-target-help' }, 'Optional: an extension, another ring group, or a SIP address (sip:user@host). Empty: the call ends unanswered.'))),
    h('div', { class: 'form-error-slot' }),
    h('div', { class: 'actions' }, save, cancel));

  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors(f);
    const e = editing ? g.extension : ext.value.trim();
    const bad = (input, text) => { fieldError(input, text); input.focus(); };
    if (!editing && !e) return bad(ext, 'Enter the extension phones dial for this group, e.g. 600.');
    if (!editing && !EXT_RE.test(e)) return bad(ext, '1 to 32 letters, digits or - _ . ! ~ * \' +, not starting with -.');
    if (!dn.check()) return;
    const to = Number(timeout.value);
    if (!Number.isInteger(to) || to < TIMEOUT_MIN || to > TIMEOUT_MAX) return bad(timeout, `A whole number of seconds from ${TIMEOUT_MIN} to ${TIMEOUT_MAX}.`);
    const t = target.value.trim();
    const p = targetProblem(t, e);
    if (p) return bad(target, p);
    const body = { extension: e, name: dn.input.value.trim(), strategy: strategy(), members: picker.value(), member_timeout: to, no_answer_target: t || null };
    save.disabled = true;
    try {
      const saved = editing
        ? await api('PUT', `/groups/${encodeURIComponent(e)}`, { body })
        : await api('POST', '/groups', { body });
      onSaved(saved);
    } catch (err) {
      // "members[2]: ..." is about the members too
      if (!err.field && /^members\[\d+\]: /.test(err.message || '')) err.field = 'members';
      showFormError(f, err);
    } finally { save.disabled = false; }
  });
  target.addEventListener('input', () => clearFieldError(target));
  return f;
}

/** The members of a group: the chosen accounts in order (up, down, remove) and a search of
 *  every account (GET /users?q=, a page at a time) to add more. strategy() says whether
 *  the order matters. Returns {el, value(), redraw()}. */
function memberPicker(initial, accounts, signal, strategy) {
  const chosen = [...initial];
  const list = h('ol', { class: 'member-list', id: 'g-members', 'aria-label': 'Chosen members' });
  const orderHint = h('p', { class: 'hint', id: 'g-members-help' });
  const countEl = h('span', { class: 'muted small', id: 'g-members-count' });
  const said = h('p', { class: 'sr', 'aria-live': 'polite', id: 'g-members-said' });
  const search = h('input', { type: 'search', id: 'g-member-search', name: 'members', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'Extension or name', 'aria-describedby': 'g-results-count', 'aria-controls': 'g-results' });
  const results = h('ul', { class: 'member-results', id: 'g-results', 'aria-label': 'Accounts found' });
  const resultsCount = h('p', { class: 'hint', id: 'g-results-count', 'aria-live': 'polite' });
  let found = [], seq = 0;

  function say(text) { said.textContent = text; }
  const nameOf = (ext) => { const u = accounts.get(ext); return u && u.display_name ? `${ext} (${u.display_name})` : ext; };

  function drawChosen(focus) {
    const ordered = strategy() === 'sequential';
    orderHint.textContent = ordered ? 'They ring in this order: the first for the member timeout, then the next.'
      : 'They all ring at once; the order does not matter.';
    countEl.textContent = `${chosen.length} of ${MEMBERS_MAX}`;
    list.classList.toggle('ordered', ordered);
    if (!chosen.length) {
      fill(list, h('li', { class: 'empty-member muted' }, 'No members yet: find accounts below and add them.'));
      return;
    }
    fill(list, chosen.map((ext, i) => {
      const up = h('button', { type: 'button', class: 'btn small icon', 'aria-label': `Move ${ext} up`, title: 'Move up', disabled: i === 0, dataset: { act: 'up', ext } }, '↑');
      const down = h('button', { type: 'button', class: 'btn small icon', 'aria-label': `Move ${ext} down`, title: 'Move down', disabled: i === chosen.length - 1, dataset: { act: 'down', ext } }, '↓');
      const rm = h('button', { type: 'button', class: 'btn small', 'aria-label': `Remove ${ext}`, dataset: { act: 'remove', ext } }, 'Remove');
      up.addEventListener('click', () => move(i, -1));
      down.addEventListener('click', () => move(i, 1));
      rm.addEventListener('click', () => remove(i));
      return h('li', { dataset: { ext } }, h('span', { class: 'pos', 'aria-hidden': 'true' }, `${i + 1}.`), memberChip(ext, accounts.get(ext)),
        h('span', { class: 'member-actions' }, up, down, rm));
    }));
    if (focus) {
      const b = list.querySelector(`li[data-ext="${CSS.escape(focus.ext)}"] button[data-act="${focus.act}"]`);
      const li = list.querySelector(`li[data-ext="${CSS.escape(focus.ext)}"]`);
      (b && !b.disabled ? b : li && li.querySelector('button:not(:disabled)') || search).focus();
    }
  }

  function move(i, d) {
    const j = i + d;
    if (j < 0 || j >= chosen.length) return;
    const ext = chosen[i];
    [chosen[i], chosen[j]] = [chosen[j], chosen[i]];
    drawChosen({ ext, act: d < 0 ? 'up' : 'down' });
    say(`${nameOf(ext)} moved to position ${j + 1} of ${chosen.length}.`);
  }

  function remove(i) {
    const [ext] = chosen.splice(i, 1);
    const next = chosen[Math.min(i, chosen.length - 1)];
    drawChosen(next ? { ext: next, act: 'remove' } : null);
    if (!next) search.focus();
    drawResults();
    say(`${nameOf(ext)} removed.`);
  }

  function add(u) {
    if (chosen.includes(u.extension)) return;
    clearFieldError(search);
    if (chosen.length >= MEMBERS_MAX) { fieldError(search, `A group has at most ${MEMBERS_MAX} members.`); return; }
    accounts.put(u);
    chosen.push(u.extension);
    drawChosen();
    drawResults();
    say(`${nameOf(u.extension)} added as member ${chosen.length}.`);
  }

  function drawResults() {
    fill(results, found.map((u) => {
      const has = chosen.includes(u.extension);
      const b = h('button', { type: 'button', class: 'btn small', disabled: has, 'aria-label': `${has ? 'Added' : 'Add'} ${u.extension}${u.display_name ? ' ' + u.display_name : ''}` }, has ? 'Added' : 'Add');
      b.addEventListener('click', () => { add(u); search.focus(); });
      return h('li', { dataset: { ext: u.extension } }, memberChip(u.extension, u), b);
    }));
  }

  async function find() {
    const my = ++seq;
    const q = search.value.trim();
    try {
      const r = await api('GET', '/users', { query: { q, limit: RESULTS }, signal });
      if (my !== seq) return; // a newer search is on its way
      found = r.items;
      drawResults();
      resultsCount.textContent = !r.total ? (q ? `No account matches “${q}”.` : 'There are no accounts yet.')
        : r.total > found.length ? `${fmtNumber(r.total)} accounts match; the first ${found.length} are shown. Type more to narrow them.`
          : `${fmtNumber(r.total)} account${r.total === 1 ? '' : 's'} match${r.total === 1 ? 'es' : ''}.`;
    } catch (e) {
      if (my === seq && e.name !== 'AbortError') { found = []; fill(results, h('li', null, errorBox(e, find))); }
    }
  }

  search.addEventListener('input', debounce(find, 200));
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { // adds the first account found, not submits the form
      ev.preventDefault();
      const u = found.find((x) => !chosen.includes(x.extension));
      if (u && search.value.trim()) add(u);
    } else if (ev.key === 'ArrowDown') {
      const b = results.querySelector('button:not(:disabled)');
      if (b) { ev.preventDefault(); b.focus(); }
    }
  });
  results.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowDown' && ev.key !== 'ArrowUp') return;
    const bs = [...results.querySelectorAll('button:not(:disabled)')];
    const i = bs.indexOf(document.activeElement);
    if (i < 0) return;
    ev.preventDefault();
    if (ev.key === 'ArrowUp' && i === 0) search.focus(); else (bs[i + (ev.key === 'ArrowDown' ? 1 : -1)] || bs[i]).focus();
  });

  drawChosen();
  find();
  const el = h('fieldset', { class: 'field members', 'aria-describedby': 'g-members-help' },
    h('legend', null, 'Members ', countEl), orderHint, list, said,
    h('div', { class: 'field member-search' }, h('label', { for: 'g-member-search' }, 'Add a member'), search, resultsCount, results));
  return { el, value: () => chosen.slice(), redraw: () => drawChosen() };
}
