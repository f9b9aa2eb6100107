// outkit sandbox inbox: a little plain JavaScript, no build step, no third-party code.
// Text from messages is only ever set with textContent or shown in a sandboxed iframe;
// the HTML fragments fetched from /rows were escaped by the server's templates.
"use strict";

function $(id) { return document.getElementById(id); }

function formQuery(form) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) { if (v) params.append(k, v); }
  return params.toString();
}

// -- the inbox list: filters, search as you type, live updates -------------------------
function setupInbox() {
  const form = $("filters"), list = $("list");
  if (!form || !list) return;
  let inFlight = false, again = false, timer = null;

  async function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const query = formQuery(form);
      const resp = await fetch("/rows" + (query ? "?" + query : ""), { credentials: "same-origin" });
      if (resp.ok) {
        list.innerHTML = await resp.text();
        list.dataset.firstPage = "yes";
        history.replaceState(null, "", "/" + (query ? "?" + query : ""));
      }
    } finally {
      inFlight = false;
      if (again) { again = false; refresh(); }
    }
  }
  form.addEventListener("change", () => refresh());
  form.addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });

  const live = $("live");
  const events = new EventSource("/events");
  let first = true;
  events.onopen = () => live.classList.add("on");
  events.onerror = () => live.classList.remove("on");
  events.onmessage = () => {
    if (first) { first = false; return; }  // the current state, already shown
    if (list.dataset.firstPage === "yes") refresh();
  };

  const clear = $("clear-form");
  if (clear) {
    clear.addEventListener("submit", (e) => {
      if (!confirm("Delete every message in the sandbox?")) e.preventDefault();
    });
  }
}

// -- a message: tabs, preview width, copy buttons, delete -------------------------------
function setupMessage() {
  const tabs = $("tabs");
  if (tabs) {
    tabs.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-tab]");
      if (!button) return;
      for (const b of tabs.querySelectorAll("button[data-tab]")) {
        b.classList.toggle("active", b === button);
        const section = $(b.dataset.tab);
        if (section) section.hidden = b !== button;
      }
    });
  }
  for (const button of document.querySelectorAll("button[data-width]")) {
    button.addEventListener("click", () => {
      const frame = $("preview");
      frame.classList.toggle("mobile", button.dataset.width === "mobile");
      frame.classList.toggle("desktop", button.dataset.width !== "mobile");
      for (const b of document.querySelectorAll("button[data-width]")) b.classList.toggle("active", b === button);
    });
  }
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = $(button.dataset.copy);
      input.select();
      try { await navigator.clipboard.writeText(input.value); } catch (err) { document.execCommand("copy"); }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }
  const del = $("delete");
  if (del) {
    del.form.addEventListener("submit", (e) => {
      if (!confirm("Delete this message?")) e.preventDefault();
    });
  }
}

// -- the template editor: render as you type and when a file changes ---------------------
function setupEditor() {
  const editor = $("editor");
  if (!editor) return;
  const base = editor.dataset.base, input = $("locals-input");
  let timer = null, seq = 0;

  function show(name, part) {
    const error = $(name + "-error");
    if (!error) return;
    error.hidden = !(part && part.error);
    error.textContent = part && part.error ? part.error : "";
    if (name === "html") {
      $("html-preview").hidden = !(part && part.value !== null);
    } else {
      $(name + "-value").textContent = part && part.value !== null ? part.value : "";
    }
  }

  async function render() {
    const mine = ++seq;
    const query = "locals=" + encodeURIComponent(input.value);
    const resp = await fetch(base + "/render?" + query, { credentials: "same-origin" });
    if (mine !== seq || !resp.ok) return;
    const result = await resp.json();
    const localsError = $("locals-error");
    localsError.hidden = !result.locals_error;
    localsError.textContent = result.locals_error || "";
    if (result.locals_error) return;
    for (const name of ["subject", "html", "text"]) show(name, result.parts[name]);
    const frame = $("html-preview");
    if (frame && result.parts.html && result.parts.html.value !== null) {
      frame.src = base + "/preview.html?" + query + "&v=" + mine;
    }
    editor.dataset.rendered = String(mine);
  }

  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(render, 200); });
  const events = new EventSource("/templates/events");
  events.onmessage = () => render();  // the first event renders the page's initial state
}

document.addEventListener("DOMContentLoaded", () => {
  setupInbox();
  setupMessage();
  setupEditor();
});
