// The dashboard without this script is complete; with it, invoice statuses change live and
// secrets get a copy button. No framework, no CDN: this file is all of it.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var text = document.getElementById(button.getAttribute("data-copy")).textContent.trim();
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var area = document.createElement("textarea");
      area.value = text; document.body.appendChild(area); area.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* stays selectable */ }
      document.body.removeChild(area);
    }
  });

  var rows = document.querySelectorAll("[data-invoice-id]");
  if (!rows.length || !window.WebSocket) { return; }
  var state = document.getElementById("live-state");
  var failures = 0;

  function apply(change) {
    var matching = document.querySelectorAll('[data-invoice-id="' + CSS.escape(change.id) + '"]');
    Array.prototype.forEach.call(matching, function (row) {
      var badge = row.querySelector('[data-field="status"]');
      if (badge && badge.textContent !== change.status) {
        badge.textContent = change.status;
        badge.className = "badge " + change.status + " changed";
      }
      var received = row.querySelector('[data-field="amount_received"]');
      if (received && change.amount_received) {
        received.textContent = received.textContent.indexOf("USDT") >= 0 ?
          change.amount_received + " USDT" : change.amount_received;
      }
      var due = row.querySelector('[data-field="amount_due"]');
      if (due && change.amount_due) { due.textContent = change.amount_due + " USDT"; }
    });
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/dashboard/live");
    socket.onmessage = function (message) {
      var data = JSON.parse(message.data);
      if (data.type === "ready") {
        failures = 0;
        if (state) { state.firstChild.textContent = "Statuses update live. "; }
        document.documentElement.setAttribute("data-live", "ready");
      } else if (data.type === "invoice") { apply(data); }
    };
    socket.onclose = function (event) {
      document.documentElement.setAttribute("data-live", "closed");
      if (event.code === 1013 || failures >= 5) {
        if (state) { state.firstChild.textContent = "Live updates are paused. "; }
        return;
      }
      failures += 1;
      setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, failures)));
    };
  }
  connect();
})();
