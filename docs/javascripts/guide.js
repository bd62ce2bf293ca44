// The step pages' code panel (built by docs/hooks/step_code.py): tabs, folded lines,
// and the code that follows the reader. No library, nothing from the network.
(() => {
  "use strict";

  const reduceMotion = matchMedia("(prefers-reduced-motion: reduce)").matches;

  // --- Tabs: a row of buttons [data-view] or [data-file] and the panes they show ---
  function select(tab) {
    const list = tab.parentElement;
    const key = tab.dataset.view ? "view" : "file";
    const container = list.parentElement;
    for (const other of list.children) {
      other.setAttribute("aria-selected", String(other === tab));
    }
    const panes = container.querySelectorAll(
      `:scope > .guide-view, :scope > .guide-scroll > .guide-pane`);
    for (const pane of panes) {
      if (pane.dataset[key] !== undefined) {
        pane.hidden = pane.dataset[key] !== tab.dataset[key];
      }
    }
  }

  function unfold(fold) {
    const hidden = fold.nextElementSibling;
    if (hidden && hidden.classList.contains("gl-folded")) hidden.hidden = false;
    fold.remove();
  }

  document.addEventListener("click", (event) => {
    const tab = event.target.closest(".guide-tab");
    if (tab) {
      select(tab);
      const panel = tab.closest(".guide-code");
      if (panel && panel.guide) panel.guide.refresh();
      return;
    }
    const fold = event.target.closest(".gl.fold");
    if (fold) unfold(fold);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    const fold = event.target.closest && event.target.closest(".gl.fold");
    if (fold) {
      event.preventDefault();
      unfold(fold);
    }
  });

  // --- The panel: which code to show, and marking it ---
  class Panel {
    constructor(panel) {
      this.panel = panel;
      this.columns = panel.closest(".guide-columns");
      const data = JSON.parse(panel.querySelector(".guide-code-data").textContent);
      this.sections = data.sections
        .map((section) => ({ ...section, heading: document.getElementById(section.id) }))
        .filter((section) => section.heading);
      this.names = data.names;
      this.targets = [];
      this.active = null;
      panel.guide = this;
      this.linkNames();
      this.follow();
    }

    visible() {
      return getComputedStyle(this.panel).display !== "none";
    }

    view() {
      return this.panel.querySelector(":scope > .guide-view:not([hidden])");
    }

    // Show targets ([{name, file, lines: {view: [first, last]}}]) in the current view.
    show(targets, why) {
      this.targets = targets;
      this.panel.dataset.showing = why || "";
      const view = this.view();
      for (const old of this.panel.querySelectorAll(".is-focus")) {
        old.classList.remove("is-focus");
      }
      for (const pane of this.panel.querySelectorAll(".has-focus")) {
        pane.classList.remove("has-focus");
      }
      const here = targets.filter((target) => target.lines[view.dataset.view]);
      if (!here.length) return;
      const file = here[0].file;
      const tab = view.querySelector(`.guide-tab--file[data-file="${CSS.escape(file)}"]`);
      if (!tab) return;
      select(tab);
      const pane = view.querySelector(`.guide-pane[data-file="${CSS.escape(file)}"]`);
      const rows = pane.querySelectorAll(".gl:not(.fold)");
      let first = null;
      for (const target of here.filter((t) => t.file === file)) {
        const [from, to] = target.lines[view.dataset.view];
        for (let n = from; n <= to && n <= rows.length; n++) {
          const row = rows[n - 1];
          const folded = row.closest(".gl-folded");
          if (folded && folded.hidden) unfold(folded.previousElementSibling);
          row.classList.add("is-focus");
          first = first || row;
        }
      }
      pane.classList.add("has-focus");
      // The first marked line in the file, whichever target it belongs to.
      first = pane.querySelector(".gl.is-focus");
      if (first) this.reveal(pane.closest(".guide-scroll"), pane, first);
    }

    // Scroll the panel (never the page) so that the marked lines are in view.
    reveal(scroller, pane, first) {
      const marked = pane.querySelectorAll(".is-focus");
      const last = marked[marked.length - 1];
      const top = first.getBoundingClientRect().top - scroller.getBoundingClientRect().top
        + scroller.scrollTop;
      const bottom = last.getBoundingClientRect().bottom
        - scroller.getBoundingClientRect().top + scroller.scrollTop;
      const seen = scroller.scrollTop;
      const height = scroller.clientHeight;
      if (top >= seen + 8 && bottom <= seen + height - 8) return;
      // The first marked line a little below the top, with the lines before it.
      const wanted = Math.max(0, top - Math.min(height * 0.15, 60));
      scroller.scrollTo({ top: wanted, behavior: reduceMotion ? "auto" : "smooth" });
    }

    refresh() {
      this.show(this.targets, this.panel.dataset.showing);
    }

    // The section the reader is at: the last heading above a line 30% down the window.
    current() {
      const line = innerHeight * 0.3;
      let found = null;
      for (const section of this.sections) {
        if (section.heading.getBoundingClientRect().top <= line) found = section;
      }
      return found || this.sections[0] || null;
    }

    follow() {
      let pending = false;
      const update = () => {
        pending = false;
        if (!this.visible()) return;
        const section = this.current();
        if (!section || section === this.active) return;
        this.active = section;
        this.panel.dataset.section = section.id;
        this.show(section.targets, `#${section.id}`);
      };
      addEventListener("scroll", () => {
        if (!pending) {
          pending = true;
          requestAnimationFrame(update);
        }
      }, { passive: true });
      addEventListener("resize", () => {
        this.active = null;
        update();
      });
      update();
    }

    // A code name in the text (`broadcast`) shows that code when clicked.
    linkNames() {
      const text = this.columns.querySelector(".guide-text");
      for (const code of text.querySelectorAll("code")) {
        if (code.closest("pre, a, .guide-excerpt")) continue;
        const name = code.textContent.trim().replace(/\(\)$/, "");
        const target = this.names[name];
        if (!target) continue;
        code.classList.add("guide-code-link");
        code.setAttribute("role", "button");
        code.setAttribute("tabindex", "0");
        code.title = `Show ${name} in the code`;
        const go = (event) => {
          if (!this.visible()) return;
          event.preventDefault();
          this.show([target], name);
        };
        code.addEventListener("click", go);
        code.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") go(event);
        });
      }
    }
  }

  function start() {
    for (const panel of document.querySelectorAll(".guide-code")) {
      if (!panel.guide) new Panel(panel);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
