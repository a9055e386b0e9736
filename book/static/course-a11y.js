/* The course website for every reader, including those with a screen reader or a keyboard only:
 * accessible names that the theme and the Jupyter widgets manager leave out or get wrong.
 * Added to every page by book/accessibility.py; tests/test_site.py runs axe-core (WCAG 2 A and AA)
 * over every page once its widgets have rendered. */
(function () {
  "use strict";

  // 1. ipywidgets' sliders (noUiSlider) give their handle role="slider" but no name: a screen
  //    reader says "slider, 0.7" without saying what it sets. The widget's description is drawn
  //    in a <label> beside it that points at nothing; name each handle by that label. Widgets
  //    render after the page has loaded, and a slider is redrawn when its range changes, so this
  //    runs again whenever the page changes.
  var labelCount = 0;
  function nameSliders(root) {
    root.querySelectorAll(".widget-slider").forEach(function (slider) {
      var label = slider.querySelector(":scope > .widget-label");
      if (!label || !label.textContent.trim()) return;
      if (!label.id) label.id = "course-widget-label-" + ++labelCount;
      slider.querySelectorAll('[role="slider"]:not([aria-labelledby])').forEach(function (handle) {
        handle.setAttribute("aria-labelledby", label.id);
      });
    });
  }

  // 2. The search field's button is named "Search" by aria-label, but shows "Search Ctrl+K":
  //    a name that differs from the visible text fails voice control ("click Search Ctrl K") and
  //    WCAG 2.5.3 (label in name). Its text is a good name: let it be the name.
  function nameSearchButtons() {
    document.querySelectorAll(".search-button-field[aria-label]").forEach(function (button) {
      if (button.textContent.trim()) button.removeAttribute("aria-label");
    });
  }

  // 3. The colour mode button is named "Color mode" while the icon it shows is named after the
  //    mode ("Light", "Dark", "System Settings"). Name it by both, so that the name contains
  //    what is shown and says which mode is on; the theme's script changes <html data-mode>.
  function nameThemeButtons() {
    var mode = document.documentElement.dataset.mode || "auto";
    document.querySelectorAll(".theme-switch-button").forEach(function (button) {
      var icon = button.querySelector('[data-mode="' + mode + '"]');
      if (!icon) return;
      var title = icon.querySelector("title"); // Font Awesome turns <i title> into <svg><title>
      var shown = (title ? title.textContent : icon.getAttribute("title") || "").trim();
      if (shown) button.setAttribute("aria-label", "Color mode: " + shown);
    });
  }

  var pending = false;
  function update() {
    pending = false;
    nameSliders(document);
    nameSearchButtons();
    nameThemeButtons();
  }
  function schedule() {
    if (!pending) {
      pending = true;
      Promise.resolve().then(update);
    }
  }

  function start() {
    update();
    new MutationObserver(schedule).observe(document.body, { childList: true, subtree: true });
    new MutationObserver(schedule).observe(document.documentElement, {
      attributes: true,
      attributeFilter: ["data-mode"],
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
