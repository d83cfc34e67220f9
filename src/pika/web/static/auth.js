/* DJ sign-up and sign-in (/dj/register, /dj/login): show the API token once, with a copy button,
 * and regenerate it (the old one stops working).  The token lives only in this page's memory,
 * until the DJ opens the console from here (then in this tab's sessionStorage). */
"use strict";

(function () {
  const P = window.Pika;
  const $ = P.$;
  const registering = location.pathname.replace(/\/+$/, "") === "/dj/register";
  const HEADERS = { "X-Pika-Client": "pika-web" };
  let token = null;

  function setup() {
    document.title = registering ? "Pika! — create a DJ account" : "Pika! — DJ sign in";
    $("auth-title").textContent = registering ? "Create a DJ account" : "DJ sign in";
    $("auth-intro").textContent = registering
      ? "Get your own page for dancers and an API token for the DJ agent and the DJ console."
      : "Sign in to get a new API token for the DJ agent and the DJ console.";
    $("submit").textContent = registering ? "Create account" : "Sign in";
    P.show($("name-field"), registering);
    $("password").autocomplete = registering ? "new-password" : "current-password";
    const other = $("switch-link");
    other.href = registering ? "/dj/login" : "/dj/register";
    other.textContent = registering ? "Sign in" : "Create an account";
  }

  function fail(message) {
    const error = $("form-error");
    error.textContent = message;
    error.hidden = false;
  }

  function showToken(value, user) {
    token = value;
    $("api-token").value = value;
    if (user) {
      $("welcome-name").textContent = user.displayName;
      const link = $("dj-page-link");
      link.href = `/dj/${encodeURIComponent(user.slug)}`;
      link.textContent = `${location.host}/dj/${user.slug}`;
    }
    $("auth-form").hidden = true;
    $("token-panel").hidden = false;
  }

  async function submit(event) {
    event.preventDefault();
    $("form-error").hidden = true;
    const email = $("email").value.trim();
    const password = $("password").value;
    const body = { email, password };
    if (registering) {
      body.displayName = $("display-name").value.trim();
      if (!body.displayName) return fail("Display name: please choose the name dancers will see.");
    }
    if (!email) return fail("Email: please enter your email address.");
    if (password.length < 8) return fail("Password: at least 8 characters.");
    const button = $("submit");
    button.disabled = true;
    const res = await P.api(registering ? "/api/auth/register" : "/api/auth/login", { json: body, headers: HEADERS });
    button.disabled = false;
    if (!res.ok || !res.body || !res.body.token) {
      fail((res.body && res.body.error) || `Something went wrong (HTTP ${res.status}).`);
      return;
    }
    $("password").value = "";
    showToken(res.body.token, res.body.user);
  }

  async function regenerate() {
    if (!token) return;
    const button = $("regenerate-token");
    button.disabled = true;
    const res = await P.api("/api/auth/regenerate-token", {
      method: "POST",
      headers: Object.assign({ Authorization: `Bearer ${token}` }, HEADERS),
    });
    button.disabled = false;
    if (!res.ok || !res.body || !res.body.token) {
      P.toast((res.body && res.body.error) || "Could not regenerate the token.");
      return;
    }
    showToken(res.body.token, null);
    P.toast("New token made — the old one no longer works");
  }

  $("auth-form").addEventListener("submit", submit);
  $("copy-token").addEventListener("click", async () => {
    P.toast((await P.copy(token, $("api-token"))) ? "Token copied" : "Select the token and copy it");
  });
  $("regenerate-token").addEventListener("click", regenerate);
  // The console opens signed in: the token goes to this tab's sessionStorage, nowhere else.
  $("console-link").addEventListener("click", () => P.setDjToken(token, false));
  setup();
})();
