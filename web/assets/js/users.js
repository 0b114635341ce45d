// Accounts (the API's users) as the pages share them: the rule for an extension, the online
// indicator, the do-not-disturb mark, and deleting one.

import { api } from './api.js';
import { h, toast, confirmDialog } from './dom.js';

/** An extension (the SIP user name) as sipbx accepts it. */
export const EXT_RE = /^[A-Za-z0-9_.!~*'+][A-Za-z0-9\-_.!~*'+]{0,31}$/;

/** The online indicator of an account. */
export function presence(user, devices) {
  const state = !user.enabled ? 'disabled' : devices.length ? 'online' : 'offline';
  const text = state === 'online' ? `online (${devices.length} device${devices.length === 1 ? '' : 's'})` : state;
  return h('span', { class: ['presence', `p-${state}`], dataset: { state } }, h('span', { class: 'dot', 'aria-hidden': 'true' }), text);
}

/** The do-not-disturb mark of an account (null when it takes calls). */
export function dndBadge(user) {
  if (!user || !user.dnd) return null;
  return h('span', { class: 'badge b-dnd', title: 'Do not disturb: calls get busy (or the busy forward)' },
    h('span', { 'aria-hidden': 'true' }, 'DND'), h('span', { class: 'sr' }, 'do not disturb'));
}

/** Asks, then deletes account ext. Resolves true once deleted, false when the admin said
 *  no; rejects with the ApiError. */
export async function deleteAccount(ext) {
  if (!(await confirmDialog(`Delete ${ext}?`, 'The account, its registrations and its forwarding rules are removed. Its call records stay.'))) return false;
  await api('DELETE', `/users/${encodeURIComponent(ext)}`);
  toast(`${ext} deleted`);
  return true;
}
