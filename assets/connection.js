/* citybrain: say so on the wall when the server cannot be reached.
 *
 * Dash callbacks that fail because the server is down fail quietly, and the map would
 * go on showing its last picture as if it were current. This watches /api/health; after
 * two failed checks it shows a banner with the time the connection was lost, and hides
 * it when the server answers again (the page's own refresh then carries on by itself:
 * no manual reload is needed after a server restart).
 */
(function () {
  "use strict";
  var INTERVAL_MS = 5000;
  var TIMEOUT_MS = 4000;
  var failures = 0;
  var lostAt = null;

  function banner() {
    var node = document.getElementById("cb-connection-banner");
    if (!node) {
      node = document.createElement("div");
      node.id = "cb-connection-banner";
      node.setAttribute("role", "alert");
      document.body.appendChild(node);
    }
    return node;
  }

  function zh() {
    var root = document.getElementById("root");
    return !root || (root.getAttribute("lang") || "zh").indexOf("zh") === 0;
  }

  function show() {
    var when = lostAt.toLocaleTimeString();
    banner().textContent = zh()
      ? "⚠ 与服务器的连接已中断（自 " + when + "），画面不是最新数据，正在自动重连…"
      : "⚠ Connection to the server lost since " + when + ": the picture is not current. Reconnecting…";
    document.body.classList.add("cb-disconnected");
  }

  function hide() {
    document.body.classList.remove("cb-disconnected");
  }

  function check() {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    fetch("/api/health", { cache: "no-store", signal: controller.signal })
      .then(function (response) {
        clearTimeout(timer);
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        failures = 0;
        lostAt = null;
        hide();
      })
      .catch(function () {
        clearTimeout(timer);
        failures += 1;
        if (failures === 1) { lostAt = new Date(); }
        if (failures >= 2) { show(); }
      });
  }

  setInterval(check, INTERVAL_MS);
})();
