// Time in state, ticking between server pushes: each [data-age] element holds the seconds
// its state had lasted when the server rendered it; the page counts on from when it saw it
// (no clock shared with the server, and no request: the page never polls).
(function () {
  "use strict";
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-age]").forEach(function (el) {
      if (!el.dataset.seenAt) { el.dataset.seenAt = String(now); }
      var age = Math.max(0, Math.floor(Number(el.dataset.age) + now - Number(el.dataset.seenAt)));
      el.textContent = Math.floor(age / 60) + ":" + String(age % 60).padStart(2, "0");
    });
  }
  setInterval(tick, 1000);
})();
