// Pipebook's notebook ergonomics, loaded in <head> so the theme applies before the first paint.
// Theme: the learner's choice (saved), else the OS setting, followed live. Large font: saved.
// Keys: Shift+Enter runs the focused cell's main action; J/K or Alt+Down/Alt+Up move between
// cells (and update the URL, so /#cell-3 can be shared).
(function () {
  "use strict";
  var root = document.documentElement;

  // The server swapped a link's ?token= for a cookie: drop the token from the address bar and the
  // history, so it is not shared by copying the URL, nor shown on a projector.
  if (/[?&]token=/.test(location.search)) {
    var params = new URLSearchParams(location.search);
    params.delete("token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  var dark = window.matchMedia("(prefers-color-scheme: dark)");

  function saved(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function save(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* private mode: not kept */ }
  }
  function applyTheme() {
    root.dataset.theme = saved("pipebook.theme") || (dark.matches ? "dark" : "light");
  }
  function applySize() {
    root.dataset.size = saved("pipebook.size") || "normal";
  }
  applyTheme();
  applySize();
  dark.addEventListener("change", applyTheme);

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest("[data-toggle]");
    if (!toggle) return;
    if (toggle.dataset.toggle === "theme") {
      save("pipebook.theme", root.dataset.theme === "dark" ? "light" : "dark");
      applyTheme();
    } else if (toggle.dataset.toggle === "size") {
      save("pipebook.size", root.dataset.size === "large" ? "normal" : "large");
      applySize();
    }
  });

  function cells() {
    return Array.prototype.slice.call(document.querySelectorAll("section.cell"));
  }
  // The cell the learner is in: the one holding focus, else the first one on screen.
  function currentCell() {
    var focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("section.cell") : null;
    if (focused) return focused;
    var all = cells();
    for (var i = 0; i < all.length; i++) {
      if (all[i].getBoundingClientRect().bottom > 80) return all[i];
    }
    return all[0] || null;
  }
  function goTo(cell) {
    if (!cell) return;
    cell.focus({ preventScroll: true });
    cell.scrollIntoView({ block: "start" });
    history.replaceState(null, "", "#" + cell.id);
  }
  function move(step) {
    var all = cells();
    var index = all.indexOf(currentCell());
    goTo(all[Math.min(Math.max(index + step, 0), all.length - 1)]);
  }
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.shiftKey) {
      var cell = currentCell();
      var primary = cell && cell.querySelector("[data-primary]:not(:disabled)");
      if (primary) {
        event.preventDefault();
        primary.click();
      }
      return;
    }
    var down = (event.altKey && event.key === "ArrowDown") || (!typing(event.target) && !event.ctrlKey && !event.metaKey && !event.altKey && event.key === "j");
    var up = (event.altKey && event.key === "ArrowUp") || (!typing(event.target) && !event.ctrlKey && !event.metaKey && !event.altKey && event.key === "k");
    if (down || up) {
      event.preventDefault();
      move(down ? 1 : -1);
    }
  });
})();
