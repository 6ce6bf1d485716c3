// The pages' small behaviours, kept out of the HTML: the Content-Security-Policy runs no inline
// script or event handler attribute (api/headers.py). Loaded with `defer` after htmx, so the htmx
// settings below are in place before htmx starts on DOMContentLoaded.
(function () {
  "use strict";

  if (window.htmx) {
    window.htmx.config.includeIndicatorStyles = false; // an inline <style> the policy would refuse
    window.htmx.config.allowEval = false; // no eval-based htmx features: the policy allows no eval
  }

  // <select data-submit-on-change>: choosing an option submits its form (the language switch).
  document.addEventListener("change", function (event) {
    var control = event.target;
    if (control instanceof HTMLSelectElement && control.hasAttribute("data-submit-on-change") && control.form) {
      control.form.submit();
    }
  });

  // <button data-print>: print the page (the action plan on paper).
  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-print]") : null;
    if (target) {
      window.print();
    }
  });
})();
