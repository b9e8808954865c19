// SPDX-License-Identifier: Apache-2.0
// The page's side of examples/web: talks only to its own backend (same origin, session cookie,
// CSRF token from the <meta>); the backend holds the API key and talks to the verifier.
'use strict';

const $ = (id) => document.getElementById(id);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
let stream = null;
let channel = 'voice';

// What each request state says to the user (GET /v1/requests/{id} `status`).
const SAY = {
  queued: 'Calling you…', pending: 'Calling you…', calling: 'Calling you…',
  call_requested: 'Calling you…',
  ringing: 'Ringing: answer your phone.',
  answered: 'Answered: listen for your code.',
  delivered: 'Your code was read to you. Type it below.',
  unheard: 'The call ended before the code was read. We will call again.',
  no_answer: 'No answer. We will try again.',
  busy: 'Your line was busy. We will try again.',
  voicemail: 'Voicemail answered. We will try again.',
  call_failed: 'The call did not go through. We will try again.',
  no_input: 'No key was pressed. We will try again.',
  failed: 'We could not reach you by phone.',
  sms_sent: 'We sent the code by SMS. Type it below.',
  expired: 'This code has expired. Ask for a new one.',
  locked: 'Too many wrong codes. Ask for a new one.',
  rate_limited: 'Too many codes for this number. Try again later.',
  blocked: 'This number cannot be called.',
  rejected: 'This number cannot be called.',
  cancelled: 'This code was cancelled.',
  unavailable: 'Checking the call status…',
};
const SAY_SMS = { queued: 'Sending you a text…', pending: 'Sending you a text…' };

async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': CSRF },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON: keep {} */ }
  return [r.status, data];
}

function busy(button, on) {
  button.disabled = on;
  button.setAttribute('aria-busy', on ? 'true' : 'false');
}

function showError(errorEl, input, text) {
  errorEl.textContent = text || '';
  if (input) {
    input.setAttribute('aria-invalid', text ? 'true' : 'false');
    if (text) { input.focus(); input.select(); }
  }
}

function follow() {
  if (stream) stream.close();
  stream = new EventSource('/api/events');
  stream.addEventListener('state', (ev) => {
    const s = JSON.parse(ev.data);
    if (s.status === 'superseded') return; // a newer request took over; its stream follows
    const status = $('status');
    status.dataset.status = s.status;
    status.textContent = (s.channel === 'sms' && SAY_SMS[s.status]) || SAY[s.status] ||
                         s.status;
    $('fallback').hidden = !s.offer_fallback;
    if (s.final) {
      stream.close();
      stream = null;
    }
  });
}

function started(newChannel, title) {
  channel = newChannel;
  $('step-phone').hidden = true;
  $('step-code').hidden = false;
  $('fallback').hidden = true;
  $('status').textContent = channel === 'sms' ? SAY_SMS.queued : SAY.queued;
  $('status').dataset.status = 'queued';
  $('progress-title').textContent = title;
  $('progress-title').focus();
  follow();
}

$('phone-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const phone = $('phone');
  if (!phone.value.trim()) {
    showError($('phone-error'), phone, 'Enter your phone number.');
    return;
  }
  busy($('call-me'), true);
  try {
    const [st, res] = await post('/api/call', { phone: phone.value });
    if (st !== 200) {
      showError($('phone-error'), phone, res.message || 'Something went wrong. Try again.');
      return;
    }
    showError($('phone-error'), phone, '');
    started('voice', 'We are calling you');
  } catch (err) {
    showError($('phone-error'), phone, 'No connection. Try again.');
  } finally {
    busy($('call-me'), false);
  }
});

async function resend(newChannel, button) {
  busy(button, true);
  try {
    const [st, res] = await post('/api/resend', { channel: newChannel });
    if (st !== 200) {
      showError($('fallback-error'), null, res.message || 'Something went wrong. Try again.');
      return;
    }
    showError($('fallback-error'), null, '');
    showError($('code-error'), $('code'), '');
    $('code').value = '';
    started(newChannel, newChannel === 'sms' ? 'We are sending you a text'
                                             : 'We are calling you again');
  } catch (err) {
    showError($('fallback-error'), null, 'No connection. Try again.');
  } finally {
    busy(button, false);
  }
}
$('call-again').addEventListener('click', () => resend('voice', $('call-again')));
$('send-sms').addEventListener('click', () => resend('sms', $('send-sms')));

$('code-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const code = $('code');
  const digits = code.value.replace(/\s/g, '');
  if (!/^[0-9]{4,10}$/.test(digits)) {
    showError($('code-error'), code, 'Enter the digits of the code, numbers only.');
    return;
  }
  busy($('verify'), true);
  try {
    const [st, res] = await post('/api/verify', { code: digits });
    if (st === 200 && res.verified) {
      if (stream) { stream.close(); stream = null; }
      $('step-code').hidden = true;
      $('step-done').hidden = false;
      $('done-title').focus();
      return;
    }
    showError($('code-error'), code, res.message || 'We could not check the code. Try again.');
  } catch (err) {
    showError($('code-error'), code, 'No connection. Try again.');
  } finally {
    busy($('verify'), false);
  }
});
