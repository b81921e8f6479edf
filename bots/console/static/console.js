// The console's keyboard shortcuts and small conveniences; every page works without them.
// a accept, e edit then accept, r refuse (then 1-9, 0 for the reason), p postpone, n next.
"use strict";

function typingIn(element) {
  return element && element.closest &&
    element.closest("input:not([type=radio]):not([type=checkbox]), textarea, select, [contenteditable]");
}

function submit(button) {
  if (button && !button.disabled) {
    button.form.requestSubmit(button);
  }
}

function openAndFocus(details, selector) {
  if (!details) return;
  details.open = true;
  const field = details.querySelector(selector);
  if (field) {
    field.focus();
    if (field.tagName === "TEXTAREA") field.setSelectionRange(field.value.length, field.value.length);
  }
}

function pickReason(refuse, key) {
  const radio = refuse.querySelector(`input[type=radio][data-key="${key}"]`);
  if (!radio) return;
  radio.checked = true;
  radio.focus();
  const duplicate = refuse.querySelector("#duplicate-of");
  if (radio.value === "already-exists" && duplicate && !duplicate.value.trim()) {
    duplicate.focus();  // the accepted proposal it repeats, then Enter
    return;
  }
  submit(refuse.querySelector("#refuse-button"));
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.id === "edit-text" && event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();  // a proposal is one paragraph: Enter accepts the edit
    submit(document.getElementById("accept-edited"));
    return;
  }
  if (typingIn(target)) {
    if (event.key === "Escape") target.blur();
    return;
  }
  if (!document.querySelector("[data-shortcuts]")) return;
  const refuse = document.getElementById("refuse");
  if (refuse && refuse.open && refuse.contains(target) && /^[0-9]$/.test(event.key)) {
    event.preventDefault();
    pickReason(refuse, event.key);
    return;
  }
  if (refuse && refuse.open && event.key === "Escape") {
    refuse.open = false;
    refuse.querySelector("summary").focus();
    return;
  }
  const actions = {
    a: () => submit(document.getElementById("accept")),
    p: () => submit(document.getElementById("postpone")),
    e: () => openAndFocus(document.getElementById("edit"), "textarea"),
    r: () => openAndFocus(document.getElementById("refuse"), "input[type=radio]"),
    n: () => {
      const next = document.querySelector("a[data-key=n]");
      if (next) next.click();
    },
  };
  if (Object.hasOwn(actions, event.key)) {
    event.preventDefault();
    actions[event.key]();
  }
});

// A form is sent once: a second press while the first is on its way does nothing.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.method.toLowerCase() !== "post") return;
  if (form.dataset.sent) {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
});

// Bulk mode: one box ticks or clears every proposal of the page.
document.addEventListener("change", (event) => {
  if (event.target.id !== "select-all") return;
  for (const box of document.querySelectorAll("input[name=ids]")) {
    box.checked = event.target.checked;
  }
});

// A sign-in link carries its code after "#", which browsers never send to the server (so no
// log holds it): put it in the sign-in form, and take it out of the address bar and history.
// Without this script, the page asks to paste the code.
(function fillSignInCode() {
  const field = document.getElementById("sign-in-code");
  if (!field || !location.hash) return;
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (!code) return;
  field.value = code;
  history.replaceState(null, "", location.pathname + location.search);
  const button = field.form.querySelector("button[type=submit]");
  if (button) button.focus();
})();
