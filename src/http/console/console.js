// smo console: live refresh of <main> (no full reload) and descriptor upload. Everything works
// without it; it only makes pages follow the system.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var every = main && parseInt(main.getAttribute("data-live") || "0", 10);
  function busy() {
    var a = document.activeElement;
    // Never replace what someone is reading or typing in: an open <details>, a focused control.
    return (a && a !== document.body && a !== main && main.contains(a)) ||
      main.querySelector("details[open]") !== null;
  }
  function refresh() {
    if (document.hidden || busy()) return;
    fetch(location.href, { headers: { "X-Console-Partial": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected || !r.ok) return null;
        return r.text();
      })
      .then(function (html) {
        if (html !== null && html !== main.innerHTML && !busy()) {
          main.innerHTML = html;
          main.setAttribute("data-refreshed", new Date().toISOString());
        }
      })
      .catch(function () {});
  }
  if (every > 0) setInterval(refresh, every);
  document.addEventListener("change", function (e) {
    var input = e.target;
    var target = input && input.getAttribute && document.getElementById(input.getAttribute("data-fills") || "");
    if (!target || !input.files || !input.files[0]) return;
    var reader = new FileReader();
    reader.onload = function () { target.value = String(reader.result); };
    reader.readAsText(input.files[0]);
  });
})();
