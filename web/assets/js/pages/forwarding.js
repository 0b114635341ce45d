// Forwarding: per account, the four rules (always, busy, no answer after N seconds,
// unavailable), each to a target (an account, a ring group or a SIP address; the extensions
// offered as they are typed, checked as they are typed) or to the account's voicemail, saved
// in one PUT.

import { api, listAll } from '../api.js';
import { h, fill, showError, toast, showFormError, clearFormErrors, fieldError, clearFieldError } from '../dom.js';
import { EXT_RE } from '../users.js';

const RULES = [
  { key: 'unconditional', title: 'Always', help: 'Every call goes straight to the target; the account does not ring.' },
  { key: 'busy', title: 'When busy', help: 'The device answers busy (or is in a call and call waiting is off).' },
  { key: 'no_answer', title: 'When not answered', help: 'Nobody answers within the delay.' },
  { key: 'unavailable', title: 'When unavailable', help: 'No device is registered.' },
];

/** An error text for target t of account ext, or null when it is fine. */
function targetProblem(t, ext) {
  if (!t) return 'Enter where to forward: an extension (e.g. 101), a ring group or a SIP address (sip:user@host).';
  if (/^sips?:/i.test(t)) {
    return /^sips?:[^\s@<>"]+@[^\s@<>"]+$|^sips?:[^\s@<>"]+$/i.test(t) ? null : 'A SIP address looks like sip:user@host.';
  }
  if (!EXT_RE.test(t)) return 'An extension or ring group is 1 to 32 letters or digits; a SIP address starts with sip:.';
  if (t === ext) return 'An account cannot forward to itself.';
  return null;
}

export function render(main, { params, signal, go }) {
  const ext = params[0] || null;
  const picker = h('select', { id: 'fw-account', name: 'account', 'aria-label': 'Account' }, h('option', { value: '' }, 'Loading…'));
  const box = h('div');
  // what a target field offers as it is typed: the accounts and the ring groups
  const targets = h('datalist', { id: 'fw-targets' });
  main.append(h('section', { class: 'page' },
    h('h1', null, 'Call forwarding'),
    h('div', { class: 'toolbar' }, h('label', { for: 'fw-account' }, 'Account '), picker),
    box, targets));

  picker.addEventListener('change', () => { if (picker.value) go(`/forwarding/${encodeURIComponent(picker.value)}`); });

  (async () => {
    try {
      const [users, groups] = await Promise.all([listAll('/users', {}, { signal }),
        api('GET', '/groups', { signal }).then((r) => r.items, () => [])]); // the targets can do without the groups
      fill(targets,
        groups.map((g) => h('option', { value: g.extension }, g.name ? `ring group ${g.name}` : 'ring group')),
        users.filter((u) => u.extension !== ext).map((u) => h('option', { value: u.extension }, u.display_name || 'account')));
      fill(picker, h('option', { value: '', disabled: true, selected: !ext }, 'Choose an account…'),
        users.map((u) => h('option', { value: u.extension, selected: u.extension === ext }, u.display_name ? `${u.extension} — ${u.display_name}` : u.extension)));
      if (!users.length) fill(box, h('p', { class: 'empty' }, 'There are no accounts yet. ', h('a', { href: '#/accounts' }, 'Create one'), ' first.'));
      else if (!ext) fill(box, h('p', { class: 'muted' }, 'Choose the account whose calls should be forwarded.'));
    } catch (e) { showError(box, e); }
  })();
  if (ext) loadRules();

  async function isGroup(x) {
    try { await api('GET', `/groups/${encodeURIComponent(x)}`, { signal }); return true; } catch { return false; }
  }

  async function loadRules() {
    fill(box, h('p', { class: 'muted' }, 'Loading…'));
    let rules;
    try {
      rules = await api('GET', `/users/${encodeURIComponent(ext)}/forwarding`, { signal });
    } catch (e) {
      if (e.status === 404 && await isGroup(ext)) {
        fill(box, h('p', { class: 'empty', id: 'fw-is-group' }, `${ext} is a ring group: its calls ring its members, then go to its no-answer target. `,
          h('a', { href: `#/groups/${encodeURIComponent(ext)}` }, `Edit ring group ${ext}`), '.'));
        return;
      }
      showError(box, e.status === 404 ? new Error(`There is no account ${ext}.`) : e, loadRules);
      return;
    }
    fill(box, rulesForm(rules));
  }

  function rulesForm(rules) {
    const inputs = {};
    const fieldsets = RULES.map((r) => {
      const cur = rules[r.key] || {};
      const en = h('input', { type: 'checkbox', id: `fw-${r.key}-en`, name: `${r.key}.enabled`, checked: !!cur.enabled });
      const tgt = h('input', { id: `fw-${r.key}-target`, name: `${r.key}.target`, value: cur.target || '', autocomplete: 'off', placeholder: 'extension, group or sip:user@host', spellcheck: 'false', list: 'fw-targets' });
      // Where the call goes: the target, or this account's voicemail (the target is kept).
      const toTarget = h('input', { type: 'radio', id: `fw-${r.key}-to-target`, name: `${r.key}.to`, value: 'target', checked: !cur.voicemail });
      const toVm = h('input', { type: 'radio', id: `fw-${r.key}-vm`, name: `${r.key}.to`, value: 'voicemail', checked: !!cur.voicemail });
      const tgtField = h('div', { class: 'field' }, h('label', { for: `fw-${r.key}-target` }, 'Target'), tgt);
      const parts = [
        h('div', { class: 'field check' }, en, h('label', { for: `fw-${r.key}-en` }, 'Forward ', r.title.toLowerCase())),
        h('div', { class: 'field dest', role: 'radiogroup', 'aria-label': `${r.title}: send the call to` },
          h('span', { class: 'check' }, toTarget, h('label', { for: `fw-${r.key}-to-target` }, 'to a number or address')),
          h('span', { class: 'check' }, toVm, h('label', { for: `fw-${r.key}-vm` }, 'to voicemail'))),
        tgtField,
      ];
      let to = null;
      if (r.key === 'no_answer') {
        to = h('input', { id: 'fw-no_answer-timeout', name: 'no_answer.timeout', type: 'number', min: 1, max: 300, inputmode: 'numeric', value: cur.timeout || 20 });
        parts.push(h('div', { class: 'field' }, h('label', { for: 'fw-no_answer-timeout' }, 'After (seconds of ringing)'), to));
      }
      inputs[r.key] = { en, tgt, to, vm: toVm };
      const fs = h('fieldset', { class: ['rule', cur.enabled ? 'on' : null], dataset: { rule: r.key } },
        h('legend', null, r.title), h('p', { class: 'hint' }, r.help), parts);
      const sync = () => {
        fs.classList.toggle('on', en.checked);
        tgtField.hidden = toVm.checked;
        tgt.required = en.checked && !toVm.checked;
        validateOne(r.key, false);
      };
      tgtField.hidden = toVm.checked;
      en.addEventListener('change', sync);
      toTarget.addEventListener('change', sync);
      toVm.addEventListener('change', sync);
      tgt.addEventListener('input', () => validateOne(r.key, false));
      tgt.addEventListener('blur', () => validateOne(r.key, true));
      if (to) to.addEventListener('input', () => validateOne(r.key, false));
      return fs;
    });

    const touched = new Set();
    // Shows the problem of one rule next to its field; returns true when the rule is valid.
    function validateOne(key, touch) {
      const { en, tgt, to, vm } = inputs[key];
      if (touch) touched.add(key);
      clearFieldError(tgt);
      if (to) clearFieldError(to);
      let ok = true;
      const t = tgt.value.trim();
      // An empty target is only an error once the user has left the field or saves; to
      // voicemail, none is needed.
      const p = !vm.checked && (en.checked || t) ? targetProblem(t, ext) : null;
      if (p && (t || touched.has(key))) { fieldError(tgt, p); ok = false; } else if (p) ok = false;
      if (to) {
        const v = Number(to.value);
        if (en.checked && (!Number.isInteger(v) || v < 1 || v > 300)) { fieldError(to, 'A whole number of seconds from 1 to 300.'); ok = false; }
      }
      return ok;
    }

    const save = h('button', { type: 'submit', class: 'btn primary' }, 'Save forwarding');
    const f = h('form', { class: 'card forwarding', novalidate: true, 'aria-label': `Forwarding of ${ext}` },
      h('p', { class: 'muted' }, 'Calls to ', h('strong', null, ext), ' are sent to the target when the rule applies: another account, a ',
        h('a', { href: '#/groups' }, 'ring group'), ' or a SIP address, or to ', h('a', { href: `#/voicemail/${encodeURIComponent(ext)}` }, 'its voicemail'),
        '. “Always” takes precedence over the others.'),
      h('div', { class: 'rules' }, fieldsets),
      h('div', { class: 'form-error-slot' }),
      h('div', { class: 'actions' }, save));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFormErrors(f);
      let ok = true;
      for (const r of RULES) ok = validateOne(r.key, true) && ok;
      if (!ok) { const bad = f.querySelector('[aria-invalid="true"]'); if (bad) bad.focus(); return; }
      const body = {};
      for (const r of RULES) {
        const { en, tgt, to, vm } = inputs[r.key];
        body[r.key] = { enabled: en.checked, target: tgt.value.trim(), voicemail: vm.checked };
        if (to) body[r.key].timeout = Number(to.value) || 20;
      }
      save.disabled = true;
      try {
        const saved = await api('PUT', `/users/${encodeURIComponent(ext)}/forwarding`, { body });
        toast(`Forwarding of ${ext} saved`);
        fill(box, rulesForm(saved));
      } catch (e) {
        // "busy.target: ..." lands next to that field
        showFormError(f, e);
      } finally { save.disabled = false; }
    });
    return f;
  }
}
