// Passwords the admin just set, kept in memory only until the account page has shown them
// once: they are not stored by sipbx (only the digest) and cannot be read back.

const pending = new Map();

export function keepPassword(ext, password) { pending.set(ext, password); }

/** The password just set for ext, if any; forgets it. */
export function takePassword(ext) {
  const p = pending.get(ext);
  pending.delete(ext);
  return p;
}

/** A strong random password that softphones accept (letters and digits only). */
export function generatePassword(len = 16) {
  const abc = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const out = [];
  const buf = new Uint32Array(len);
  crypto.getRandomValues(buf);
  for (const v of buf) out.push(abc[v % abc.length]);
  return out.join('');
}
