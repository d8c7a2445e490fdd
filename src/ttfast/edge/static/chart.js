/*
 * ttfast chart page: candlesticks with HMA(20) coloured per segment, a MACD(12,26,9) pane
 * (histogram in its four colours, MACD and signal lines), fed by ttfast.edge:
 *   GET symbols, GET history/{symbol}?bars=N, WS ws ({"subscribe": [...]} -> snapshot, deltas).
 * The forming bar moves with every delta; the socket reconnects by itself (backoff with
 * jitter) and refills the gap from history. `?symbol=SPY` picks the symbol, `?token=...` is
 * passed on to every request. Times are shown in the browser's time zone.
 * window.ttfastChart.debug() returns what the series hold (used by tests/browser).
 */
(() => {
  "use strict";

  const LWC = window.LightweightCharts;
  const HMA_UP = "#01FFFF";
  const HMA_DOWN = "#FF66FE";
  const HMA_FLAT = "#787b86";
  // above zero rising, above falling, below rising, below falling
  const HIST_COLORS = ["#26a69a", "#b2dfdb", "#ffcdd2", "#ff5252"];
  const CANDLE_UP = "#26a69a";
  const CANDLE_DOWN = "#ef5350";
  const MACD_COLOR = "#2962ff";
  const SIGNAL_COLOR = "#ff6d00";
  const THEME = { bg: "#131722", text: "#d1d4dc", grid: "#1e222d", border: "#2a2e39" };
  const HISTORY_BARS = 600;
  const MAX_BARS = 5000;
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10000;
  const SYMBOLS_REFRESH_MS = 60000;

  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  const $ = (id) => document.getElementById(id);

  // -- URLs (relative to the page, so a path prefix works; the token goes everywhere) --------
  function apiUrl(path, query) {
    const u = new URL(path, document.baseURI);
    for (const [k, v] of Object.entries(query || {})) u.searchParams.set(k, String(v));
    if (token) u.searchParams.set("token", token);
    return u;
  }
  function wsUrl() {
    const u = apiUrl("ws");
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  }

  // -- formatting ----------------------------------------------------------------------------
  const num = (v) => typeof v === "number" && Number.isFinite(v);
  function fmtPrice(v) {
    if (!num(v)) return "–";
    const a = Math.abs(v);
    return v.toFixed(a >= 1 ? 2 : a >= 0.01 ? 4 : 6);
  }
  function fmtInd(v) {
    if (!num(v)) return "–";
    const a = Math.abs(v);
    return v.toFixed(a >= 100 ? 2 : a >= 1 || a === 0 ? 3 : a >= 0.01 ? 4 : 6);
  }
  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 2 });
  const fmtVolume = (v) => (num(v) ? compact.format(v) : "–");
  const dateFmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hour12: false,
  });
  const hmFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
  const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const monthFmt = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric" });
  const yearFmt = new Intl.DateTimeFormat(undefined, { year: "numeric" });
  const fmtTime = (t) => dateFmt.format(new Date(t * 1000));
  function tickMark(t, type) {
    const d = new Date(t * 1000);
    // TickMarkType: 0 year, 1 month, 2 day of month, 3 time, 4 time with seconds
    if (type === 0) return yearFmt.format(d);
    if (type === 1) return monthFmt.format(d);
    if (type === 2) return dayFmt.format(d);
    return hmFmt.format(d);
  }

  // -- charts --------------------------------------------------------------------------------
  function chartOptions(showTime) {
    return {
      autoSize: true,
      layout: {
        background: { type: LWC.ColorType.Solid, color: THEME.bg },
        textColor: THEME.text,
        fontSize: 12,
      },
      grid: { vertLines: { color: THEME.grid }, horzLines: { color: THEME.grid } },
      rightPriceScale: { borderColor: THEME.border, minimumWidth: 84 },
      timeScale: {
        visible: showTime, borderColor: THEME.border, timeVisible: true, secondsVisible: false,
        rightOffset: 5, barSpacing: 7, tickMarkFormatter: tickMark,
      },
      crosshair: { mode: LWC.CrosshairMode.Normal },
      localization: { timeFormatter: fmtTime, priceFormatter: fmtPrice },
      handleScale: { axisPressedMouseMove: { time: true, price: true } },
    };
  }
  const priceChart = LWC.createChart($("price-chart"), chartOptions(false));
  const macdChart = LWC.createChart($("macd-chart"), chartOptions(true));
  macdChart.applyOptions({ localization: { priceFormatter: fmtInd } });
  priceChart.priceScale("right").applyOptions({ scaleMargins: { top: 0.12, bottom: 0.05 } });
  macdChart.priceScale("right").applyOptions({ scaleMargins: { top: 0.22, bottom: 0.06 } });

  const candles = priceChart.addCandlestickSeries({
    upColor: CANDLE_UP, downColor: CANDLE_DOWN, borderVisible: false,
    wickUpColor: CANDLE_UP, wickDownColor: CANDLE_DOWN,
  });
  const hmaLine = priceChart.addLineSeries({
    color: HMA_FLAT, lineWidth: 2, priceLineVisible: false, lastValueVisible: true,
    crosshairMarkerVisible: false,
  });
  const indFormat = { type: "custom", formatter: fmtInd, minMove: 0.000001 };
  const histSeries = macdChart.addHistogramSeries({
    priceFormat: indFormat, priceLineVisible: false, lastValueVisible: false, base: 0,
  });
  const macdLine = macdChart.addLineSeries({
    color: MACD_COLOR, lineWidth: 2, priceFormat: indFormat, priceLineVisible: false,
    crosshairMarkerVisible: false,
  });
  const signalLine = macdChart.addLineSeries({
    color: SIGNAL_COLOR, lineWidth: 2, priceFormat: indFormat, priceLineVisible: false,
    crosshairMarkerVisible: false,
  });

  // Both panes show the same bars (null indicator values are whitespace points), so their
  // logical ranges line up: scrolling or zooming one moves the other; the crosshair follows.
  let syncing = false;
  function linkRanges(from, to) {
    from.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (syncing || range === null) return;
      syncing = true;
      try { to.timeScale().setVisibleLogicalRange(range); } finally { syncing = false; }
    });
  }
  linkRanges(priceChart, macdChart);
  linkRanges(macdChart, priceChart);
  let crossSyncing = false;
  function linkCrosshair(from, to, toSeries, valueOf) {
    from.subscribeCrosshairMove((p) => {
      if (crossSyncing) return;
      crossSyncing = true;
      try {
        const bar = p.time === undefined ? null : barAt(p.time);
        if (bar === null) to.clearCrosshairPosition();
        else to.setCrosshairPosition(valueOf(bar), bar.time, toSeries);
        hovered = bar;
        renderLegend();
      } finally { crossSyncing = false; }
    });
  }
  linkCrosshair(priceChart, macdChart, histSeries, (b) => (num(b.macd.hist) ? b.macd.hist : 0));
  linkCrosshair(macdChart, priceChart, candles, (b) => b.close);

  // -- state ---------------------------------------------------------------------------------
  const state = {
    symbol: null, period: null, symbols: [],
    bars: [],            // {time (s), open, high, low, close, volume, macd: {...}, hma: {...}}
    loaded: false,       // history of state.symbol applied; until then messages wait in queue
    queue: [],
    dirty: [], reset: false, resetView: false, frame: 0, lastDrawn: -Infinity,
    histGen: 0,
    ws: null, wsOpen: false, attempt: 0, reconnectTimer: 0,
    status: "connecting",
    counters: { messages: 0, snapshots: 0, deltas: 0, finals: 0, subscribed: 0, connects: 0,
      closes: 0, historyLoads: 0, draws: 0, errors: 0 },
  };
  let hovered = null;

  function toBar(c, macd, hma) {
    if (!c || !num(c.time)) return null;
    return {
      time: Math.floor(c.time / 1000), open: c.open, high: c.high, low: c.low, close: c.close,
      volume: c.volume, macd: macd || {}, hma: hma || {},
    };
  }
  function findIndex(time) { // first index with bars[i].time >= time
    const bars = state.bars;
    let lo = 0, hi = bars.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (bars[mid].time < time) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function barAt(time) {
    const i = findIndex(time);
    return i < state.bars.length && state.bars[i].time === time ? state.bars[i] : null;
  }
  function upsert(bar) {
    if (bar === null) return;
    const bars = state.bars, n = bars.length;
    if (n === 0 || bar.time > bars[n - 1].time) { bars.push(bar); state.dirty.push(bar); }
    else if (bar.time === bars[n - 1].time) { bars[n - 1] = bar; state.dirty.push(bar); }
    else { // a correction of an older bar: redraw everything
      const i = findIndex(bar.time);
      if (bars[i].time === bar.time) bars[i] = bar; else bars.splice(i, 0, bar);
      state.reset = true;
    }
    schedule();
  }

  // -- drawing (once per animation frame, however many deltas came) --------------------------
  const hmaColor = (h) => h.color || (h.direction === "up" ? HMA_UP : h.direction === "down" ? HMA_DOWN : HMA_FLAT);
  function points(b) {
    const t = b.time;
    const ok = num(b.open) && num(b.high) && num(b.low) && num(b.close);
    const m = b.macd, h = b.hma;
    return [
      ok ? { time: t, open: b.open, high: b.high, low: b.low, close: b.close } : { time: t },
      num(h.value) ? { time: t, value: h.value, color: hmaColor(h) } : { time: t },
      num(m.hist) ? { time: t, value: m.hist, color: m.color || HIST_COLORS[0] } : { time: t },
      num(m.value) ? { time: t, value: m.value } : { time: t },
      num(m.signal) ? { time: t, value: m.signal } : { time: t },
    ];
  }
  const SERIES = [candles, hmaLine, histSeries, macdLine, signalLine];
  function drawAll() {
    const cols = [[], [], [], [], []];
    for (const b of state.bars) points(b).forEach((p, i) => cols[i].push(p));
    SERIES.forEach((s, i) => s.setData(cols[i]));
    state.lastDrawn = state.bars.length ? state.bars[state.bars.length - 1].time : -Infinity;
  }
  function drawOne(b) {
    points(b).forEach((p, i) => SERIES[i].update(p));
    state.lastDrawn = b.time;
  }
  function schedule() {
    if (!state.frame) state.frame = window.requestAnimationFrame(flush);
  }
  function flush() {
    state.frame = 0;
    if (!state.loaded) return;
    if (state.bars.length > MAX_BARS) {
      state.bars.splice(0, state.bars.length - MAX_BARS);
      state.reset = true;
    }
    let all = state.reset;
    if (!all) {
      for (const b of state.dirty) {
        if (b.time < state.lastDrawn) { all = true; break; }
        try { drawOne(b); } catch (e) { all = true; break; }
      }
    }
    if (all) drawAll();
    if (state.resetView) {
      state.resetView = false;
      priceChart.timeScale().scrollToRealTime();
    }
    state.dirty = [];
    state.reset = false;
    state.counters.draws++;
    renderLegend();
  }

  // -- legend --------------------------------------------------------------------------------
  function setText(id, text, color) {
    const el = $(id);
    el.textContent = text;
    el.style.color = color || "";
  }
  function renderLegend() {
    const bars = state.bars;
    const b = hovered || (bars.length ? bars[bars.length - 1] : null);
    setText("lg-symbol", state.symbol || "–");
    if (b === null) return;
    const i = findIndex(b.time);
    const prev = i > 0 ? bars[i - 1] : null;
    const dirColor = num(b.close) && num(b.open) && b.close < b.open ? CANDLE_DOWN : CANDLE_UP;
    setText("lg-time", fmtTime(b.time));
    setText("lg-open", fmtPrice(b.open), dirColor);
    setText("lg-high", fmtPrice(b.high), dirColor);
    setText("lg-low", fmtPrice(b.low), dirColor);
    setText("lg-close", fmtPrice(b.close), dirColor);
    if (prev && num(prev.close) && num(b.close) && prev.close !== 0) {
      const d = b.close - prev.close;
      const pct = (100 * d) / prev.close;
      setText("lg-change", `${d >= 0 ? "+" : ""}${fmtPrice(d)} (${d >= 0 ? "+" : ""}${pct.toFixed(2)}%)`,
        d < 0 ? CANDLE_DOWN : CANDLE_UP);
    } else setText("lg-change", "");
    setText("lg-volume", fmtVolume(b.volume));
    const h = b.hma;
    setText("lg-hma", fmtInd(h.value), num(h.value) ? hmaColor(h) : "");
    setText("lg-hma-dir", h.direction === "up" ? "\u25B2 up" : h.direction === "down" ? "\u25BC down" : "",
      hmaColor(h));
    const m = b.macd;
    setText("lg-hist", fmtInd(m.hist), num(m.hist) ? m.color || "" : "");
    setText("lg-macd", fmtInd(m.value));
    setText("lg-signal", fmtInd(m.signal));
  }

  // -- status line ---------------------------------------------------------------------------
  function setStatus(s, text) {
    state.status = s;
    const el = $("status");
    el.dataset.state = s;
    el.textContent = text || s;
  }
  function note(text) { $("note").textContent = text || ""; }

  // -- history -------------------------------------------------------------------------------
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const backoff = (attempt) => {
    const ms = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempt);
    return ms * (0.75 + 0.5 * Math.random());
  };

  async function loadHistory() {
    const gen = ++state.histGen;
    const sym = state.symbol;
    if (!sym) return;
    state.loaded = false;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await fetch(apiUrl(`history/${encodeURIComponent(sym)}`, { bars: HISTORY_BARS }),
          { cache: "no-store" });
        if (gen !== state.histGen) return;
        if (!r.ok) throw new Error(`history/${sym}: HTTP ${r.status}`);
        const body = await r.json();
        if (gen !== state.histGen) return;
        applyHistory(body);
        note("");
        return;
      } catch (e) {
        if (gen !== state.histGen) return;
        state.counters.errors++;
        note(String(e.message || e));
        await sleep(backoff(attempt));
        if (gen !== state.histGen) return;
      }
    }
  }
  function applyHistory(body) {
    if (body.period) state.period = body.period;
    $("period").textContent = state.period || "–";
    const bars = [];
    for (const raw of body.bars || []) {
      const b = toBar(raw, raw.macd, raw.hma);
      if (b !== null && (bars.length === 0 || b.time > bars[bars.length - 1].time)) bars.push(b);
    }
    state.bars = bars;
    state.loaded = true;
    state.reset = true;
    state.dirty = [];
    state.counters.historyLoads++;
    const queued = state.queue;
    state.queue = [];
    for (const msg of queued) handle(msg);
    schedule();
  }

  // -- symbols -------------------------------------------------------------------------------
  async function loadSymbols() {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await fetch(apiUrl("symbols"), { cache: "no-store" });
        if (!r.ok) throw new Error(`symbols: HTTP ${r.status}`);
        const body = await r.json();
        setSymbols(Array.isArray(body.symbols) ? body.symbols.map(String) : []);
        return;
      } catch (e) {
        state.counters.errors++;
        note(String(e.message || e));
        await sleep(backoff(attempt));
      }
    }
  }
  function setSymbols(list) {
    const want = state.symbol || params.get("symbol") || list[0] || null;
    const all = list.slice();
    if (want && !all.includes(want)) all.unshift(want);
    if (all.join("\n") !== state.symbols.join("\n")) {
      state.symbols = all;
      const sel = $("symbol");
      sel.replaceChildren(...all.map((s) => new Option(s, s)));
      if (all.length === 0) sel.append(new Option("no symbols", ""));
    }
    if (want && want !== state.symbol) switchSymbol(want);
    $("symbol").value = state.symbol || "";
  }
  function switchSymbol(sym) {
    if (!sym || sym === state.symbol) return;
    const old = state.symbol;
    state.symbol = sym;
    state.period = null;
    state.bars = [];
    state.queue = [];
    state.dirty = [];
    state.loaded = false;
    state.reset = true;
    state.resetView = true;
    hovered = null;
    SERIES.forEach((s) => s.setData([]));
    $("symbol").value = sym;
    document.title = `${sym} · ttfast`;
    params.set("symbol", sym);
    window.history.replaceState(null, "", `?${params}`);
    renderLegend();
    if (state.wsOpen) {
      if (old) send({ unsubscribe: [old] });
      send({ subscribe: [sym] });
    }
    loadHistory();
  }

  // -- live feed -----------------------------------------------------------------------------
  function send(obj) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
  }
  function connect() {
    state.reconnectTimer = 0;
    if (state.ws) return;
    setStatus(state.attempt ? "reconnecting" : "connecting", state.attempt ? "reconnecting" : "connecting");
    let ws;
    try { ws = new WebSocket(wsUrl()); } catch (e) { scheduleReconnect(); return; }
    state.ws = ws;
    ws.onopen = () => {
      if (state.ws !== ws) return;
      state.wsOpen = true;
      state.counters.connects++;
      setStatus("live", "live");
      if (state.symbol) {
        send({ subscribe: [state.symbol] });
        if (state.counters.connects > 1) loadHistory(); // refill what was missed meanwhile
      }
    };
    ws.onmessage = (ev) => {
      if (state.ws !== ws) return;
      state.attempt = 0; // the server talks: a later drop retries quickly again
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { state.counters.errors++; return; }
      for (const m of Array.isArray(msg) ? msg : [msg]) {
        state.counters.messages++;
        if (state.loaded || !m || (m.type !== "snapshot" && m.type !== "delta")) handle(m);
        else if (state.queue.push(m) > MAX_BARS) state.queue.shift();
      }
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.wsOpen = false;
      state.counters.closes++;
      scheduleReconnect();
    };
    ws.onerror = () => {}; // a close follows
  }
  function scheduleReconnect() {
    if (state.reconnectTimer) return;
    const ms = backoff(state.attempt++);
    setStatus("reconnecting", `reconnecting in ${(ms / 1000).toFixed(1)} s`);
    state.reconnectTimer = window.setTimeout(connect, ms);
  }
  function reconnectNow() {
    if (state.ws) { state.ws.close(); return; }
    if (state.reconnectTimer) { window.clearTimeout(state.reconnectTimer); state.reconnectTimer = 0; }
    connect();
  }
  window.addEventListener("online", reconnectNow);

  function handle(m) {
    if (!m || typeof m !== "object") return;
    if (m.type === "subscribed") { state.counters.subscribed++; return; }
    if (m.type === "error") { state.counters.errors++; note(String(m.error || m.message || "error")); return; }
    if (m.type !== "snapshot" && m.type !== "delta") return;
    if (m.symbol !== state.symbol) return;
    if (state.period && m.period && m.period !== state.period) return;
    if (m.type === "snapshot") {
      state.counters.snapshots++;
      upsert(toBar(m.last_candle, m.macd, m.hma));
    } else {
      state.counters.deltas++;
      if (m.final) state.counters.finals++;
      upsert(toBar(m.candle, m.macd, m.hma));
    }
  }

  // -- debug view for tests ------------------------------------------------------------------
  function rect(el) {
    const r = el.getBoundingClientRect();
    return { x: r.left, y: r.top, width: r.width, height: r.height };
  }
  function plotRect(el, chart, withTimeScale) { // the drawing area, without the axes
    const r = rect(el);
    r.width -= chart.priceScale("right").width();
    if (withTimeScale) r.height -= chart.timeScale().height();
    return r;
  }
  function colorCounts(data) {
    const out = {};
    for (const p of data) {
      if (p.value === undefined || !p.color) continue;
      const c = p.color.toLowerCase();
      out[c] = (out[c] || 0) + 1;
    }
    return out;
  }
  function debug() {
    const c = candles.data().filter((p) => p.open !== undefined);
    const h = hmaLine.data();
    const m = histSeries.data();
    const bars = state.bars;
    return {
      symbol: state.symbol, period: state.period, status: state.status, loaded: state.loaded,
      // the series show state.bars (history applied and the frame that draws it has run)
      drawn: state.loaded && !state.reset && state.frame === 0,
      hoverTime: hovered ? hovered.time : null,
      counters: { ...state.counters },
      candles: c.length,
      candlesUp: c.filter((p) => p.close >= p.open).length,
      candlesDown: c.filter((p) => p.close < p.open).length,
      lastCandle: c.length ? c[c.length - 1] : null,
      lastBar: bars.length ? bars[bars.length - 1] : null,
      hmaPoints: h.filter((p) => p.value !== undefined).length,
      hmaColors: colorCounts(h),
      histPoints: m.filter((p) => p.value !== undefined).length,
      histColors: colorCounts(m),
      macdPoints: macdLine.data().filter((p) => p.value !== undefined).length,
      signalPoints: signalLine.data().filter((p) => p.value !== undefined).length,
      visibleLogicalRange: priceChart.timeScale().getVisibleLogicalRange(),
      macdVisibleLogicalRange: macdChart.timeScale().getVisibleLogicalRange(),
      legend: {
        symbol: $("lg-symbol").textContent, time: $("lg-time").textContent,
        close: $("lg-close").textContent,
        hma: $("lg-hma").textContent, hmaDir: $("lg-hma-dir").textContent,
        hist: $("lg-hist").textContent, macd: $("lg-macd").textContent,
        signal: $("lg-signal").textContent,
      },
      rects: {
        price: rect($("price-chart")), macd: rect($("macd-chart")),
        pricePlot: plotRect($("price-chart"), priceChart, false),
        macdPlot: plotRect($("macd-chart"), macdChart, true),
        legends: [...document.querySelectorAll(".legend")].map(rect),
      },
    };
  }
  window.ttfastChart = {
    version: LWC.version(),
    debug,
    setSymbol: switchSymbol,
    reconnect: reconnectNow,
    fit: () => priceChart.timeScale().fitContent(),
    series: () => ({
      candles: candles.data(), hma: hmaLine.data(), hist: histSeries.data(),
      macd: macdLine.data(), signal: signalLine.data(),
    }),
  };

  // -- start ---------------------------------------------------------------------------------
  $("symbol").addEventListener("change", (ev) => switchSymbol(ev.target.value));
  connect();
  loadSymbols();
  window.setInterval(() => { if (state.wsOpen) loadSymbols(); }, SYMBOLS_REFRESH_MS);
})();
