// The sign-in page: served at whatever dashboard address was asked for while signed out, so a
// successful sign-in reloads that same address.

const form = document.querySelector('[data-test-id="login-form"]');
const keyInput = document.querySelector('[data-test-id="key-input"]');
const secretInput = document.querySelector('[data-test-id="secret-input"]');
const button = document.querySelector('[data-test-id="login-button"]');
const error = document.querySelector('[data-test-id="login-error"]');

function showError(message) {
  error.textContent = message;
  error.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const key = keyInput.value.trim();
  const secret = secretInput.value;
  if (!key || !secret) {
    showError("Enter your API key and secret.");
    (key ? secretInput : keyInput).focus();
    return;
  }
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    const response = await fetch("/dashboard/session", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ key, secret }),
      credentials: "same-origin",
    });
    if (response.ok) {
      location.reload();
      return;
    }
    const body = await response.json().catch(() => null);
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      showError(`Too many failed sign-ins from this address. Try again in ${wait || "a minute"} seconds.`);
    } else if (response.status === 401) {
      showError("That API key and secret do not match an account.");
      secretInput.select();
    } else {
      showError((body && body.error && body.error.description) || `Sign-in failed (${response.status}).`);
    }
  } catch {
    showError("The dashboard could not be reached. Check your connection and try again.");
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
});

// Enabled only now: a click before this script ran would submit the form natively.
button.disabled = false;
keyInput.focus();
