/* Archive pages: upload progress and confirmations. No inline script is allowed (CSP), so the
   pages carry data- attributes and this file attaches the behaviour. */
(function () {
  "use strict";

  // Buttons with data-confirm ask before their form is sent.
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var text = button && button.getAttribute("data-confirm");
    if (text && !window.confirm(text)) {
      event.preventDefault();
    }
  }, true);

  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) {
    return;  // the form still works without script, only without a progress bar
  }
  var progress = document.querySelector(form.getAttribute("data-progress"));
  var bar = progress && progress.querySelector(".progress-bar");
  var results = document.querySelector(form.getAttribute("data-results"));

  function show(percent) {
    if (!bar) { return; }
    progress.classList.remove("d-none");
    bar.style.width = percent + "%";
    bar.textContent = percent + "%";
  }

  function line(text, ok) {
    var div = document.createElement("div");
    div.className = ok ? "text-success" : "text-danger";
    div.textContent = text;
    results.appendChild(div);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    results.textContent = "";
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { show(Math.round(100 * e.loaded / e.total)); }
    });
    xhr.addEventListener("load", function () {
      submit.disabled = false;
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
      if (!data) {
        line(results.getAttribute("data-failed") + " (" + xhr.status + ")", false);
        return;
      }
      (data.results || []).forEach(function (r) {
        line(r.name + ": " + (r.ok ? results.getAttribute("data-stored") : r.message), r.ok);
      });
      Object.keys(data.errors || {}).forEach(function (k) {
        data.errors[k].forEach(function (m) { line(m, false); });
      });
      if (data.message) { line(data.message, false); }
      var failed = (data.results || []).some(function (r) { return !r.ok; });
      if (xhr.status < 300 && !failed && data.next) {
        window.location.assign(data.next);
      }
    });
    xhr.addEventListener("error", function () {
      submit.disabled = false;
      line(results.getAttribute("data-failed"), false);
    });
    xhr.send(new FormData(form));
  });
})();
