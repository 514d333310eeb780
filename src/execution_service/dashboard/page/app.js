"use strict";
// The page's state and its refreshes. Open positions and accounts are polled (prices move without
// events); everything else is reloaded when the event stream reports a change, and every 30 s in
// case an event was missed while the stream was down.
(() => {
  const { api, charts, tables, dec } = window.Dash;
  const $ = (id) => document.getElementById(id);
  const FAST_MS = 2000;
  const SLOW_MS = 30000;
  const DAY_MS = 86400e3;
  let names = new Map();  // connection id -> "#id name"
  let fastTimer = null, slowTimer = null, soon = null;
  let loading = null, again = false;
  let closing = null;  // the position in the close dialog

  const stream = new api.EventStream(onEvent, (state) => {
    const live = $("live");
    // Back after a drop: catch up on what happened meanwhile (resumed events reload too).
    if (state === "on" && live.dataset.live === "retrying") reloadSoon();
    live.className = "live " + state;
    live.dataset.live = state;
    live.textContent = state === "on" ? "● live" : state === "retrying" ? "● reconnecting" : "● off";
  });

  function takeKeyFromFragment() {
    const match = /(?:^|&)key=([^&]+)/.exec(location.hash.slice(1));
    if (!match) return null;
    history.replaceState(null, "", location.pathname + location.search);
    return decodeURIComponent(match[1]);
  }

  // The chosen range, as the analytics endpoints take it.
  function range() {
    const choice = $("range").value, now = Date.now();
    const days = { "24h": 1, "7d": 7, "30d": 30, "90d": 90 }[choice];
    if (days) return { since: new Date(now - days * DAY_MS).toISOString() };
    if (choice === "today") return { since: new Date(now).toISOString().slice(0, 10) };
    if (choice === "custom") return { since: $("since").value, until: $("until").value };
    return {};
  }

  function qs(params) {
    const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
    return entries.length ? "?" + new URLSearchParams(entries).toString() : "";
  }

  // With the chosen account, if any.
  const query = (params) => qs({ ...params, connection_id: $("account").value });

  function figure(name, text, value, cls) {
    const dd = document.querySelector(`dd[data-figure="${name}"]`);
    dd.textContent = text;
    dd.className = cls || "";
    dd.dataset.value = value === null || value === undefined ? "" : String(value);
  }

  function renderSummary(s, r, account) {
    const c = (v) => dec.cut(v, 2);
    figure("net_pnl", c(s.net_pnl), s.net_pnl, dec.tone(s.net_pnl));
    figure("total_trades", String(s.total_trades), s.total_trades);
    figure("won_lost", s.winning_trades + " / " + s.losing_trades, s.winning_trades + "/" + s.losing_trades);
    figure("win_rate", c(s.win_rate) + " %", s.win_rate);
    figure("profit_factor", s.profit_factor === null ? (s.total_trades ? "no losses" : "—") : c(s.profit_factor), s.profit_factor);
    figure("expectancy", c(s.expectancy), s.expectancy, dec.tone(s.expectancy));
    const pair = (a, b) => [a, b].map((v) => (v === null ? "" : v)).join("/");
    figure("average_win_loss", c(s.average_win) + " / " + c(s.average_loss), pair(s.average_win, s.average_loss));
    figure("best_worst", c(s.best_trade) + " / " + c(s.worst_trade), pair(s.best_trade, s.worst_trade));
    figure("max_drawdown", c(s.max_drawdown) + " (" + c(s.max_drawdown_percent) + " %)", s.max_drawdown, s.max_drawdown !== "0" ? "down" : "");
    figure("starting_equity", c(s.starting_equity), s.starting_equity);
    // What these figures are of: the range and account they were asked for.
    $("range-label").textContent = (r.since ? "since " + r.since.slice(0, 16).replace("T", " ") : "all time") +
      (r.until ? " until " + r.until + " (inclusive)" : "") + (account ? " · account #" + account : "");
  }

  function renderAccounts(items) {
    names = new Map(items.map((c) => [c.id, "#" + c.id + " " + c.name]));
    tables.renderConnections(items);
    const select = $("account"), chosen = select.value;
    const options = [["", "All accounts"], ...items.map((c) => [String(c.id), names.get(c.id)])];
    const now = [...select.options].map((o) => [o.value, o.textContent]);
    if (JSON.stringify(now) !== JSON.stringify(options)) {
      select.replaceChildren(...options.map(([value, text]) => Object.assign(document.createElement("option"), { value, textContent: text })));
      select.value = items.some((c) => String(c.id) === chosen) ? chosen : "";
    }
    return items;
  }

  async function loadFast() {
    const [connections, positions] = await Promise.all([
      api.get("/api/v1/connections?limit=100"),
      api.get("/api/v1/positions" + query({ status: "open", limit: 100 })),
    ]);
    renderAccounts(connections.items);
    tables.renderPositions(positions.items, names, openClose);
    figure("open_positions", String(positions.total), positions.total);
    const upnl = dec.sum(positions.items.map((p) => p.pnl));
    figure("unrealized_pnl", dec.cut(upnl, 2), upnl, dec.tone(upnl));
    return connections.items;
  }

  async function dailyRows(params) {
    const rows = [];
    for (let offset = 0; offset < 5000; offset += 500) {
      const page = await api.get("/api/v1/analytics/daily" + query({ ...params, limit: 500, offset }));
      rows.push(...page.items);
      if (rows.length >= page.total || !page.items.length) break;
    }
    const days = new Map();
    for (const r of rows) {
      const d = days.get(r.date) || { date: r.date, net: "0", trades: 0, won: 0, lost: 0 };
      d.net = dec.add(d.net, r.net_pnl);
      d.trades += r.total_trades; d.won += r.winning_trades; d.lost += r.losing_trades;
      days.set(r.date, d);
    }
    // A day counts if it closed a trade or realised anything (a fee, a partial exit).
    const traded = [...days.values()].filter((d) => d.trades || /[1-9]/.test(d.net));
    return { days: traded.sort((a, b) => a.date.localeCompare(b.date)), snapshot: latest(rows) };
  }

  // Per account, its latest row with a snapshot; balance (cash) and equity (cash plus open
  // positions) summed over them. Null when no account shown has one.
  function latest(rows) {
    const last = new Map();
    for (const r of rows) if (r.balance !== null && r.equity !== null) last.set(r.connection_id, r);
    if (!last.size) return { balance: null, equity: null };
    const chosen = [...last.values()];
    return { balance: dec.sum(chosen.map((r) => r.balance)), equity: dec.sum(chosen.map((r) => r.equity)) };
  }

  async function loadAll() {
    const accounts = await loadFast();
    const r = range(), account = $("account").value;
    const shown = account ? accounts.filter((c) => String(c.id) === account) : accounts;
    const [summary, daily, closed, logs, curves] = await Promise.all([
      api.get("/api/v1/analytics/summary" + query(r)),
      dailyRows(r),
      api.get("/api/v1/positions" + query({ status: "closed", limit: 50 })),
      api.get("/api/v1/logs" + query({ limit: 20 })),
      Promise.all(shown.map((c) => api.get("/api/v1/analytics/equity" + qs({ ...r, connection_id: c.id })))),
    ]);
    renderSummary(summary, r, account);
    figure("balance", dec.cut(daily.snapshot.balance, 2), daily.snapshot.balance);
    figure("equity", dec.cut(daily.snapshot.equity, 2), daily.snapshot.equity);
    charts.daily($("daily-chart"), daily.days);
    charts.equity($("equity-chart"), shown.map((c, i) => ({
      id: c.id, label: names.get(c.id), cumulative: curves[i].starting_equity === null, points: curves[i].points,
    })));
    $("equity-note").textContent = "start equity + realised PnL (open PnL not counted)" +
      (curves.some((c) => c.starting_equity === null) ? "; cumulative PnL where an account has no equity snapshot" : "");
    const byClose = [...closed.items].sort((a, b) => (b.closed_at || "").localeCompare(a.closed_at || ""));
    tables.renderClosed(byClose, names);
    tables.renderLogs(logs.items, names);
  }

  // Runs `work`, one at a time. A full reload asked for meanwhile runs afterwards; a poll is
  // skipped (the running work reads the same or more).
  async function run(work) {
    if (!api.hasKey()) return;
    if (loading) { again = again || work === loadAll; return; }
    loading = work;
    try {
      await work();
      $("status").className = "";
      $("status").textContent = "Updated " + new Date().toISOString().slice(11, 19) + " UTC";
      document.body.dataset.state = "ready";
    } catch (error) {
      $("status").className = "error";
      $("status").textContent = error.message;
      document.body.dataset.state = "error";
    } finally {
      loading = null;
      if (again) { again = false; run(loadAll); }
    }
  }

  function reloadSoon() {
    clearTimeout(soon);
    soon = setTimeout(() => run(loadAll), 250);
  }

  function onEvent(frame) {
    tables.addEvent(frame);
    reloadSoon();
  }

  function openClose(p) {
    closing = p;
    $("close-id").textContent = "#" + p.id;
    $("close-what").textContent = [tables.side(p.direction), dec.cut(p.quantity, 8), p.symbol, "on",
      names.get(p.connection_id) || "#" + p.connection_id, "· entry", dec.cut(p.entry_price, 6),
      "· price", dec.cut(p.current_price, 6), "· uPnL", dec.cut(p.pnl, 2)].join(" ");
    $("close-result").textContent = "";
    $("close-result").className = "";
    $("close-confirm").disabled = false;
    $("close-confirm").hidden = false;
    $("close-cancel").textContent = "Cancel";
    $("close-dialog").showModal();
  }

  async function confirmClose() {
    const p = closing, result = $("close-result");
    if (!p) return;
    $("close-confirm").disabled = true;
    result.textContent = "Closing…";
    try {
      const done = await api.post("/api/v1/positions/" + p.id + "/close");
      const pos = done.position;
      result.textContent = pos.status === "closed"
        ? "Closed at " + dec.cut(pos.close_price, 6) + " · PnL " + dec.cut(pos.pnl, 2)
        : "Exit order " + done.execution.status + "; the position is " + pos.status + ".";
      result.dataset.outcome = pos.status;
      $("close-confirm").hidden = true;
      $("close-cancel").textContent = "Done";
      closing = null;
    } catch (error) {
      result.textContent = error.message;
      result.className = "error";
      result.dataset.outcome = "error";
      $("close-confirm").disabled = false;
    }
    run(loadAll);
  }

  // The kill switch: the chosen account, or every account this key owns.
  function openCloseAll() {
    const account = $("account").value;
    $("close-all-scope").textContent = account ? names.get(Number(account)) || "#" + account
      : "every account of this key";
    $("close-all-result").textContent = "";
    $("close-all-result").className = "";
    $("close-all-confirm").disabled = false;
    $("close-all-confirm").hidden = false;
    $("close-all-cancel").textContent = "Cancel";
    $("close-all-dialog").showModal();
  }

  async function confirmCloseAll() {
    const account = $("account").value, result = $("close-all-result");
    $("close-all-confirm").disabled = true;
    result.textContent = "Closing…";
    try {
      const path = account ? "/api/v1/connections/" + account + "/close-all" : "/api/v1/close-all";
      const done = await api.post(path);
      result.textContent = done.cancelled + " orders cancelled, " + done.closing + " positions closing" +
        (done.failed ? ", " + done.failed + " cancels failed (try again)" : "") + ".";
      result.dataset.outcome = "done";
      $("close-all-confirm").hidden = true;
      $("close-all-cancel").textContent = "Done";
    } catch (error) {
      result.textContent = error.message;
      result.className = "error";
      result.dataset.outcome = "error";
      $("close-all-confirm").disabled = false;
    }
    run(loadAll);
  }

  function start(key) {
    api.setKey(key);
    clearInterval(fastTimer);
    clearInterval(slowTimer);
    tables.clearEvents();
    document.body.dataset.state = "loading";
    stream.start();
    run(loadAll);
    fastTimer = setInterval(() => run(loadFast), FAST_MS);
    slowTimer = setInterval(() => run(loadAll), SLOW_MS);
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("key-input"), key = input.value.trim();
    input.value = "";  // not left in the field either
    if (key) start(key);
  });
  $("range").addEventListener("change", () => {
    $("custom-range").hidden = $("range").value !== "custom";
    run(loadAll);
  });
  for (const id of ["account", "since", "until"]) $(id).addEventListener("change", () => run(loadAll));
  $("close-confirm").addEventListener("click", confirmClose);
  $("close-cancel").addEventListener("click", () => { closing = null; $("close-dialog").close(); });
  $("close-all").addEventListener("click", openCloseAll);
  $("close-all-confirm").addEventListener("click", confirmCloseAll);
  $("close-all-cancel").addEventListener("click", () => $("close-all-dialog").close());

  const key = takeKeyFromFragment();
  if (key) start(key);
})();
