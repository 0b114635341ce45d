// The server-sent event stream (/api/v1/events): one EventSource for the whole app,
// shared by the pages through on(). When events were lost, pages are told ('reconnect')
// so they can reload their live state instead of trusting what they missed.

import { api, API, rememberAndLogin } from './api.js';

const EVENT_TYPES = ['call.new', 'call.ringing', 'call.forwarded', 'call.answered',
  'call.held', 'call.ended', 'registration.changed', 'presence.changed', 'voicemail.changed'];

const listeners = new Map(); // type ('*' for all) -> Set of fn(type, data)
let source = null;
let retryTimer = 0;
let wanted = false;

function setState(state) {
  const el = document.getElementById('live');
  if (!el) return;
  el.dataset.state = state;
  el.querySelector('.live-text').textContent =
    state === 'on' ? 'live' : state === 'connecting' ? 'connecting…' : 'offline';
  el.title = state === 'on' ? 'Receiving live events' : 'Live events are not arriving; reconnecting';
}

function dispatch(type, data) {
  for (const key of [type, '*']) {
    const set = listeners.get(key);
    if (set) for (const fn of [...set]) {
      try { fn(type, data); } catch (e) { console.error('event handler', e); }
    }
  }
}

/** Subscribes fn(type, data) to type ('call.*' for every call event, '*' for all);
 *  returns the function that unsubscribes. */
export function on(type, fn) {
  const types = type === 'call.*' ? EVENT_TYPES.filter((t) => t.startsWith('call.')) : [type];
  for (const t of types) {
    if (!listeners.has(t)) listeners.set(t, new Set());
    listeners.get(t).add(fn);
  }
  return () => types.forEach((t) => listeners.get(t).delete(fn));
}

/** Like on(), for changes the page reads back from the API: sipbx sends
 *  registration.changed once the change is committed, so one fetch sees it; a burst of
 *  events (a phone's several bindings, a sweep of expiries) gives one call of fn. */
export function onChange(type, fn, quietMs = 50) {
  let t = 0;
  const off = on(type, (ty, data) => {
    clearTimeout(t);
    t = setTimeout(() => fn(ty, data), quietMs);
  });
  return () => { clearTimeout(t); off(); };
}

/** For pages that show accounts with their registrations: after a burst of
 *  registration.changed, reloadRegistrations(), or reloadAll() when an event may mean the
 *  accounts changed too (known(extension) is false: an account not shown registered;
 *  'removed': one was deleted or disabled). Registrations change all the time, accounts
 *  seldom. Returns the function that unsubscribes. */
export function onRegistrations(known, reloadRegistrations, reloadAll) {
  let accountsChanged = false;
  const offs = [
    on('registration.changed', (t, r) => { if (r.action === 'removed' || !known(r.extension)) accountsChanged = true; }),
    onChange('registration.changed', () => {
      if (accountsChanged) { accountsChanged = false; reloadAll(); } else reloadRegistrations();
    }),
  ];
  return () => offs.forEach((f) => f());
}

export function connected() {
  return !!source && source.readyState === EventSource.OPEN;
}

/** Opens the stream (after log-in). */
export function start() {
  wanted = true;
  if (!source) open(false);
}

// replacing: the stream before this one closed, and what happened since is unknown.
function open(replacing) {
  setState('connecting');
  const es = new EventSource(API + '/events', { withCredentials: true });
  source = es;
  let opened = false, resumable = false;
  es.addEventListener('open', () => {
    setState('on');
    // The browser reopens a dropped stream by itself with Last-Event-ID, and sipbx replays
    // what was missed (or says 'overflow'); without an id (no event had come yet) it cannot,
    // and a new EventSource starts afresh: then the pages reload.
    if (opened ? !resumable : replacing) dispatch('reconnect', null);
    opened = true;
  });
  for (const t of EVENT_TYPES) {
    es.addEventListener(t, (ev) => {
      if (ev.lastEventId) resumable = true;
      let data = null;
      try { data = JSON.parse(ev.data); } catch { return; }
      dispatch(t, data);
    });
  }
  // Events sipbx could not deliver (a slow tab, a gap too long to replay, a restart).
  es.addEventListener('overflow', () => dispatch('reconnect', null));
  es.addEventListener('error', () => {
    setState('connecting');
    if (es.readyState === EventSource.CLOSED) {
      // A non-200 answer (e.g. 401 after the session ended) closes the stream for good:
      // ask the API who we are (a 401 leads to the log-in page), then try again.
      source = null;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(async () => {
        if (!wanted) return;
        try {
          await api('GET', '/session');
        } catch (e) {
          if (e.status === 401) { rememberAndLogin(); return; } // the session ended
        }
        if (wanted && !source) open(true);
      }, 2000);
    }
  });
}

/** Closes the stream (log-out, session ended). */
export function stop() {
  wanted = false;
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  setState('off');
}
