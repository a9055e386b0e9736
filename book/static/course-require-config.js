/* Loaded by widget pages between require.js and the Jupyter widgets HTML manager
 * (book/offline.py lists the three for myst-nb). The manager's webpack bundles find their
 * fonts beside their AMD module name, "@jupyter-widgets/html-manager/dist/...", which
 * require.js would resolve against the page's folder (a 404); map that name to the folder
 * the site serves the manager from. */
(function () {
  "use strict";
  var here = document.currentScript.src;
  window.require.config({
    paths: {
      "@jupyter-widgets/html-manager/dist": new URL("offline/html-manager", here).href,
    },
  });
})();
