// Writes the address this page was served from into the "Try it" commands
// (their text, http://127.0.0.1:8080, is the default listen address).
(function () {
  "use strict";
  if (!/^https?:$/.test(location.protocol)) return;
  var spans = document.querySelectorAll(".origin");
  for (var i = 0; i < spans.length; i++) spans[i].textContent = location.origin;
})();

// Polls /status every 2 s and shows a few numbers; stays silent on any error.
(function () {
  "use strict";
  var box = document.getElementById("live");
  if (!box || !window.fetch) return;

  // Flattens nested JSON into "a.b" -> number pairs.
  function numbers(obj, prefix, out) {
    Object.keys(obj).forEach(function (key) {
      var value = obj[key], name = prefix ? prefix + "." + key : key;
      if (typeof value === "number") out.push([name, value]);
      else if (value && typeof value === "object" && !Array.isArray(value)) numbers(value, name, out);
    });
    return out;
  }

  function show(pairs) {
    if (!pairs.length) return;
    box.textContent = "";
    pairs.slice(0, 8).forEach(function (pair) {
      var cell = document.createElement("div");
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = pair[0].replace(/_/g, " ");
      dd.textContent = pair[1].toLocaleString();
      cell.appendChild(dt);
      cell.appendChild(dd);
      box.appendChild(cell);
    });
  }

  function poll() {
    fetch("/status", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && typeof data === "object") show(numbers(data, "", [])); })
      .catch(function () {})
      .then(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
