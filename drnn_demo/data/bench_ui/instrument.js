// Installed in every page before its scripts run. window.__bench holds the clocks the benchmark reads.
(() => {
  const b = window.__bench = {last: 0, mutations: 0, stateChanges: 0, press: null, firstChart: null,
                              sent: null, wsLast: 0, wsBytes: 0, busy: 0};
  const MAIN = "[data-testid='stMain']";
  const CHART = ".js-plotly-plot .main-svg .mlayer > *";  // a trace drawn in its layer (scatter, heatmap, bar, ...)
  const inMain = (node) => {
    const el = node.nodeType === 1 ? node : node.parentElement;
    return !!(el && el.closest(MAIN));
  };
  new MutationObserver((records) => {
    const now = performance.now();
    for (const r of records) {
      if (r.type === "attributes" && r.attributeName === "data-test-script-state") { b.stateChanges += 1; continue; }
      if (inMain(r.target)) { b.last = now; b.mutations += 1; }
    }
    if (b.firstChart === null && document.querySelector(CHART)) b.firstChart = now;
  }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  document.addEventListener("keydown", () => { b.press = performance.now(); b.sent = null; }, true);
  // main-thread tasks of 50 ms or more (script, layout, plotly drawing) after the key press
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (b.press !== null && e.startTime >= b.press) b.busy += e.duration;
    }).observe({type: "longtask"});
  } catch (e) { b.busy = null; }
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        b.wsLast = performance.now();
        const d = e.data;
        b.wsBytes += typeof d === "string" ? d.length : (d.byteLength ?? d.size ?? 0);
      });
    }
    send(data) {
      if (b.press !== null && b.sent === null) b.sent = performance.now();
      return super.send(data);
    }
  };
})();
