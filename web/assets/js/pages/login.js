// Log-in: the admin's user name and password; back to where the user was afterwards.

import { api, takeNext } from '../api.js';
import { h, showFormError, clearFormErrors } from '../dom.js';
import { loggedIn } from '../app.js';

export function render(main) {
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, value: 'admin' });
  const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Log in');
  const form = h('form', { class: 'card login-card', novalidate: true },
    h('h1', null, h('img', { src: 'favicon.svg', alt: '', width: 28, height: 28 }), ' sipbx'),
    h('p', { class: 'muted' }, 'Log in with the admin password printed when sipbx first started.'),
    h('div', { class: 'field' }, h('label', { for: 'login-user' }, 'User name'), user),
    h('div', { class: 'field' }, h('label', { for: 'login-pass' }, 'Password'), pass),
    h('div', { class: 'form-error-slot' }),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    if (!pass.value) { pass.focus(); return; }
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      loggedIn(await api('POST', '/session', { body: { username: user.value.trim(), password: pass.value } }));
      location.hash = takeNext();
    } catch (e) {
      if (e.status === 401) e.message = 'Wrong user name or password.';
      if (e.status === 429) e.message = `Too many failed attempts: try again in ${e.retryAfter || 'a few'} seconds.`;
      e.field = null;
      showFormError(form, e);
      pass.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });
  main.append(h('section', { class: 'login' }, form));
  (user.value ? pass : user).focus();
}
