"use strict";
// The two charts, drawn by the vendored uPlot: realised equity over time (one stepped line per
// account: the start equity plus what each fill realised, holding between them) and daily PnL bars. Times are UTC. Values become numbers only to
// place pixels; legends and tooltips show the API's decimal strings (cut to 2 places).
(() => {
  const Dash = (window.Dash = window.Dash || {});
  const { cut, tone } = Dash.dec;
  const COLOURS = ["#ff9f1c", "#58a6ff", "#3fb950", "#d2a8ff", "#f778ba", "#79c0ff", "#e3b341"];
  const UP = "#3fb950", DOWN = "#f85149", MUTED = "#8b96a5", GRID = "#2a313c";
  const DAY = 86400;
  const live = new Map();  // element id -> { plot, signature }

  const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1e3), "Etc/UTC");
  const stamp = (seconds, withTime) => {
    const iso = new Date(seconds * 1e3).toISOString();
    return withTime ? iso.slice(0, 19).replace("T", " ") : iso.slice(0, 10);
  };
  // 24-hour UTC labels: dates for ticks a day or more apart, else date and time.
  const timeLabels = (u, ticks, axisIdx, space, incr) =>
    ticks.map((t) => (incr >= DAY ? stamp(t, false).slice(5) : stamp(t, true).slice(5, 16)));
  const axis = (extra) => ({
    stroke: MUTED, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, ...extra,
  });

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A tooltip that follows the cursor; `lines(u, idx)` returns [label, value, class] rows.
  function tooltip(title, lines) {
    let tip = null;
    return {
      hooks: {
        init: (u) => {
          tip = el("div", "tooltip");
          u.over.appendChild(tip);
        },
        setCursor: (u) => {
          const { left, top, idx } = u.cursor;
          if (idx === null || idx === undefined || left < 0) {
            tip.style.display = "none";
            return;
          }
          const rows = lines(u, idx).filter(Boolean);
          tip.replaceChildren(el("b", "", title(u, idx)), ...rows.map(([label, value, cls]) => {
            const line = el("div", "", label + " ");
            line.appendChild(el("span", cls || "", value));
            return line;
          }));
          tip.style.display = "block";
          const flip = left > u.over.clientWidth * 0.6;
          tip.style.left = (flip ? left - tip.offsetWidth - 12 : left + 12) + "px";
          tip.style.top = Math.max(0, top - tip.offsetHeight - 8) + "px";
        },
      },
    };
  }

  // Draw `make(width)` (a list of plots) into `host` unless the same data is drawn there already;
  // the plots follow the host's width.
  function draw(host, signature, make) {
    const current = live.get(host.id);
    if (current && current.signature === signature) return;
    if (current) current.plots.forEach((plot) => plot.destroy());
    host.replaceChildren();
    live.set(host.id, { plots: make(Math.max(300, host.clientWidth)), signature });
    if (!host.dataset.observed) {
      host.dataset.observed = "1";
      new ResizeObserver(() => {
        const width = Math.max(300, host.clientWidth);
        for (const plot of live.get(host.id).plots) plot.setSize({ width, height: plot.height });
      }).observe(host);
    }
  }

  function empty(host, text) {
    draw(host, "empty:" + text, () => {
      host.appendChild(el("div", "note", text));
      return [];
    });
  }

  const seconds = (timestamp) => Date.parse(timestamp) / 1e3;

  // One small chart per account (each on its own scale: accounts differ by orders of magnitude),
  // on one time axis, with their cursors in step.
  // curves: [{ id, label, cumulative, points: [{ timestamp, equity, pnl }] }]
  function equity(host, curves) {
    const drawn = curves.filter((c) => c.points.length);
    host.dataset.series = String(drawn.length);
    if (!drawn.length) return empty(host, "Nothing realised in this range.");
    const all = drawn.flatMap((c) => c.points.map((p) => seconds(p.timestamp)));
    let lo = Math.min(...all), hi = Math.max(...all);
    if (hi - lo < 3600) [lo, hi] = [lo - 1800, hi + 1800];
    const height = drawn.length === 1 ? 220 : Math.max(110, Math.floor(250 / drawn.length));
    draw(host, JSON.stringify(drawn), (width) => drawn.map((c, i) => {
      const colour = COLOURS[i % COLOURS.length];
      const times = c.points.map((p) => seconds(p.timestamp));
      const first = c.points[0].equity, last = c.points[c.points.length - 1].equity;
      const change = Dash.dec.sub(last, first);
      const figure = el("figure", "equity");
      figure.dataset.connectionId = String(c.id);
      figure.dataset.points = String(c.points.length);
      figure.dataset.last = last;
      const caption = el("figcaption", "", c.label + (c.cumulative ? " · cumulative PnL " : " · realised equity "));
      caption.append(el("b", "", cut(last, 2)), " ",
        el("span", tone(change), (tone(change) === "up" ? "+" : "") + cut(change, 2) + " in range"));
      figure.appendChild(caption);
      host.appendChild(figure);
      return new uPlot({
        width, height, tzDate: utc,
        scales: { x: { time: true, range: () => [lo, hi] } },
        series: [{}, {
          stroke: colour, width: 2, fill: colour + "22",
          paths: uPlot.paths.stepped({ align: 1 }),
          points: { show: true, size: 5, fill: colour },
        }],
        axes: [axis({ values: timeLabels }), axis({ size: 64 })],
        legend: { show: false },
        cursor: { sync: { key: "equity" } },
        plugins: [tooltip((u, idx) => stamp(times[idx], true) + " UTC", (u, idx) => {
          const pnl = c.points[idx].pnl;
          return [
            [c.label, cut(c.points[idx].equity, 2)],
            /[1-9]/.test(pnl) ? ["realised", cut(pnl, 2), tone(pnl)] : null,
          ];
        })],
      }, [times, c.points.map((p) => Number(p.equity))], figure);
    }));
  }

  // days: [{ date: "YYYY-MM-DD", net, trades, won, lost }], oldest first
  function daily(host, days) {
    host.dataset.days = String(days.length);
    if (!days.length) return empty(host, "No trading days in this range.");
    const times = days.map((d) => Date.parse(d.date + "T00:00:00Z") / 1e3);
    const values = days.map((d) => Number(d.net));
    const bars = uPlot.paths.bars({ size: [0.6, 48], align: 0 });
    draw(host, JSON.stringify(days), (width) => [new uPlot({
      width, height: 250, tzDate: utc,
      scales: {
        x: { time: true, range: (u, lo, hi) => [lo - DAY * 0.7, hi + DAY * 0.7] },
        y: { range: (u, lo, hi) => uPlot.rangeNum(Math.min(lo, 0), Math.max(hi, 0), 0.15, true) },
      },
      series: [
        { label: "Day", value: (u, t) => (t === null ? "—" : stamp(t, false)) },
        { label: "Profit", fill: UP + "cc", stroke: UP, paths: bars, points: { show: false },
          value: (u, v, si, idx) => (idx === null || idx === undefined || v === null ? "—" : cut(days[idx].net, 2)) },
        { label: "Loss", fill: DOWN + "cc", stroke: DOWN, paths: bars, points: { show: false },
          value: (u, v, si, idx) => (idx === null || idx === undefined || v === null ? "—" : cut(days[idx].net, 2)) },
      ],
      axes: [axis({
        // A tick under every bar (every few bars over a long range), never between days.
        splits: () => times.filter((t, i) => i % Math.ceil(times.length / 12) === 0),
        values: (u, ticks) => ticks.map((t) => stamp(t, false).slice(5)),
      }), axis({ size: 70 })],
      legend: { show: false },
      plugins: [tooltip((u, idx) => days[idx].date, (u, idx) => [
        ["Net PnL", cut(days[idx].net, 2), tone(days[idx].net)],
        ["Trades", days[idx].trades + " (" + days[idx].won + " won, " + days[idx].lost + " lost)"],
      ])],
    }, [times, values.map((v) => (v >= 0 ? v : null)), values.map((v) => (v < 0 ? v : null))], host)]);
  }

  Dash.charts = { equity, daily };
})();
