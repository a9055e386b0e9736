/* The course website offline: small fixes between the libraries a Jupyter Book page loads.
 * Added to every page by book/offline.py, before MathJax and the widget manager. */
(function () {
  "use strict";
  // 1. The widget manager typesets widget labels with MathJax 2's API,
  //    MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); the site has MathJax 3.
  function installHub() {
    var mj = window.MathJax;
    if (!mj || mj.Hub || typeof mj.version !== "string") return;
    mj.Hub = {
      Queue: function () {
        var elements = [];
        Array.prototype.forEach.call(arguments, function (job) {
          if (Array.isArray(job) && job[0] === "Typeset" && job[2]) elements.push(job[2]);
        });
        var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
        var next = ready.then(function () {
          return mj.typesetPromise ? mj.typesetPromise(elements.length ? elements : undefined) : null;
        });
        if (mj.startup) mj.startup.promise = next.catch(function (err) {
          console.warn("MathJax could not typeset a widget label:", err);
        });
        return next;
      },
    };
  }
  installHub();
  document.addEventListener("DOMContentLoaded", installHub);
  window.addEventListener("load", installHub);

  // 2. "Live code" (thebe) starts a kernel on mybinder.org, so it needs internet; offline,
  //    say so on the button instead of leaving it spinning.
  document.addEventListener(
    "error",
    function (event) {
      var el = event.target;
      if (!el || el.tagName !== "SCRIPT" || !/thebe/i.test(el.src || "")) return;
      document.querySelectorAll(".thebe-launch-button").forEach(function (button) {
        button.textContent =
          "Live code needs an internet connection (it runs on mybinder.org). " +
          "Offline, download the notebook and run it locally.";
      });
    },
    true
  );
})();
