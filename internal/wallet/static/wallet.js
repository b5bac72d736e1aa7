// The wallet's only script: the WebAuthn ceremonies (passkey sign-in,
// registration and payment approval). Everything else works without it.
"use strict";
(function () {
  const b64u = {
    dec(s) {
      s = s.replace(/-/g, "+").replace(/_/g, "/");
      const bin = atob(s + "===".slice((s.length + 3) % 4));
      return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
    },
    enc(buf) {
      let bin = "";
      for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
      return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };
  const csrf = () => (document.querySelector('meta[name="csrf"]') || {}).content || "";
  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? "{}" : JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || "The server refused (" + res.status + ").");
    return data;
  }
  function show(err) {
    const el = document.getElementById("passkey-error");
    if (!el) return;
    el.textContent = err.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : err.message;
    el.hidden = false;
    el.focus();
  }
  function credJSON(c) {
    const r = c.response, out = { id: c.id, rawId: b64u.enc(c.rawId), type: c.type, clientExtensionResults: c.getClientExtensionResults(), response: { clientDataJSON: b64u.enc(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = b64u.enc(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = b64u.enc(r.authenticatorData);
      out.response.signature = b64u.enc(r.signature);
      if (r.userHandle) out.response.userHandle = b64u.enc(r.userHandle);
    }
    return out;
  }
  function requestOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64u.dec(pk.challenge);
    (pk.allowCredentials || []).forEach((d) => { d.id = b64u.dec(d.id); });
    return { publicKey: pk };
  }
  function creationOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64u.dec(pk.challenge);
    pk.user.id = b64u.dec(pk.user.id);
    (pk.excludeCredentials || []).forEach((d) => { d.id = b64u.dec(d.id); });
    return { publicKey: pk };
  }
  function on(id, fn) {
    const el = document.getElementById(id);
    if (!el) return;
    el.addEventListener("click", async () => {
      el.disabled = true;
      try { await fn(el); } catch (e) { show(e); } finally { el.disabled = false; }
    });
  }
  on("passkey-signin", async (el) => {
    const opts = await post("/wallet/signin/passkey/options");
    const cred = await navigator.credentials.get(requestOptions(opts));
    const next = el.dataset.next || "/wallet/";
    const res = await post("/wallet/signin/passkey?next=" + encodeURIComponent(next), credJSON(cred));
    location.assign(res.redirect);
  });
  on("passkey-register", async () => {
    const opts = await post("/wallet/passkeys/options");
    const cred = await navigator.credentials.create(creationOptions(opts));
    const res = await post("/wallet/passkeys", credJSON(cred));
    location.assign(res.redirect);
  });
  document.querySelectorAll(".passkey-approve").forEach((el) => {
    el.addEventListener("click", async () => {
      const id = el.dataset.confirmation;
      el.disabled = true;
      try {
        const opts = await post("/wallet/approvals/" + id + "/options");
        const cred = await navigator.credentials.get(requestOptions(opts));
        const res = await post("/wallet/approvals/" + id + "/passkey", credJSON(cred));
        location.assign(res.redirect);
      } catch (e) { show(e); } finally { el.disabled = false; }
    });
  });
})();
