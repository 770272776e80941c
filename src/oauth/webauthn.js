// authgate's security keys and passkeys: the buttons add-key (the account
// page), use-key (the second-factor page) and passkey (the sign-in page)
// run a WebAuthn ceremony with /management/webauthn/, then go where the
// gateway says. Served inline, allowed by its hash in the page's CSP.
(() => {
  const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)).buffer;
  const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const say = (text) => {
    const shown = document.getElementById('webauthn-error');
    if (shown) { shown.textContent = text; shown.hidden = !text; }
  };
  async function post(path, body) {
    const answer = await fetch('/management/webauthn/' + path, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    const json = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(json.error_description || 'The gateway answered ' + answer.status);
    return json;
  }
  const extensions = (c) => (c.getClientExtensionResults ? c.getClientExtensionResults() : {});
  async function register(button) {
    const csrf = button.dataset.csrf;
    const name = (document.getElementById('key-name') || {}).value || '';
    const begun = await post('register/begin', { csrf });
    const options = begun.publicKey;
    options.challenge = dec(options.challenge);
    options.user.id = dec(options.user.id);
    (options.excludeCredentials || []).forEach((c) => { c.id = dec(c.id); });
    const made = await navigator.credentials.create({ publicKey: options });
    return post('register/finish', {
      csrf, ceremony: begun.ceremony, name,
      credential: {
        id: made.id, rawId: enc(made.rawId), type: made.type, extensions: extensions(made),
        response: { attestationObject: enc(made.response.attestationObject), clientDataJSON: enc(made.response.clientDataJSON) },
      },
    });
  }
  async function authenticate(button, kind) {
    const csrf = button.dataset.csrf;
    const begun = await post(kind + '/begin', { csrf });
    const options = begun.publicKey;
    options.challenge = dec(options.challenge);
    (options.allowCredentials || []).forEach((c) => { c.id = dec(c.id); });
    const used = await navigator.credentials.get({ publicKey: options });
    return post(kind + '/finish', {
      csrf, ceremony: begun.ceremony, rd: button.dataset.rd || '', request: button.dataset.request || '',
      credential: {
        id: used.id, rawId: enc(used.rawId), type: used.type, extensions: extensions(used),
        response: {
          authenticatorData: enc(used.response.authenticatorData), clientDataJSON: enc(used.response.clientDataJSON),
          signature: enc(used.response.signature), userHandle: used.response.userHandle ? enc(used.response.userHandle) : null,
        },
      },
    });
  }
  const actions = { 'add-key': (b) => register(b), 'use-key': (b) => authenticate(b, 'verify'), passkey: (b) => authenticate(b, 'passkey') };
  for (const [id, act] of Object.entries(actions)) {
    const button = document.getElementById(id);
    if (!button) continue;
    if (!window.PublicKeyCredential) continue;
    button.hidden = false;
    button.addEventListener('click', async (event) => {
      event.preventDefault();
      say('');
      button.disabled = true;
      try {
        const done = await act(button);
        window.location.assign(done.location);
      } catch (err) {
        say(err.name === 'NotAllowedError' ? 'The key was not used (cancelled or timed out): try again.' : err.message);
      } finally {
        button.disabled = false;
      }
    });
  }
})();
