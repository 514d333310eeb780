"use strict";
// The tables and the event feed. Text goes in with textContent only; every cell names its field
// (data-field) and, for a figure, carries the API's exact string (data-value) beside the shown cut.
(() => {
  const Dash = (window.Dash = window.Dash || {});
  const { cut, tone, sub, percentOf, cmp } = Dash.dec;
  const $ = (id) => document.getElementById(id);

  const time = (value) => (value ? value.replace("T", " ").replace(/\.\d+/, "").replace("Z", "") : "—");

  function duration(from, to) {
    if (!from) return "—";
    const seconds = Math.max(0, Math.floor(((to ? Date.parse(to) : Date.now()) - Date.parse(from)) / 1e3));
    const [d, h, m, s] = [Math.floor(seconds / 86400), Math.floor(seconds / 3600) % 24,
      Math.floor(seconds / 60) % 60, seconds % 60];
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return m + "m " + String(s).padStart(2, "0") + "s";
    return s + "s";
  }

  // A money or price cell: the cut string shown, the exact one in data-value. A value that is not
  // zero never shows as 0 (a fee-sized loss is -0.0018, not a red 0).
  const money = (field, value, places, extra) => {
    const text = cut(value, places);
    return { field, value, text: text === "0" && tone(value) ? cut(value, 8) : text, cls: "num " + (extra || "") };
  };

  function row(tbody, cells, dataset) {
    const tr = document.createElement("tr");
    tr.className = "data";
    for (const [key, value] of Object.entries(dataset)) tr.dataset[key] = String(value);
    for (const cell of cells) {
      const td = document.createElement("td");
      const text = cell.text === null || cell.text === undefined || cell.text === "" ? "—" : String(cell.text);
      td.textContent = text;
      if (cell.cls) td.className = cell.cls.trim();
      if (cell.field) td.dataset.field = cell.field;
      if (cell.value !== undefined && cell.value !== null) td.dataset.value = String(cell.value);
      if (cell.sub) td.appendChild(Object.assign(document.createElement("span"), { className: "sub", textContent: cell.sub }));
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
    return tr;
  }

  function fill(tableId, items, empty, render) {
    const table = $(tableId), tbody = table.tBodies[0];
    tbody.replaceChildren();
    if (!items.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = table.tHead.rows[0].cells.length;
      td.textContent = empty;
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    for (const item of items) render(tbody, item);
  }

  const side = (direction) => (direction === "buy" ? "long" : "short");

  // The stop that would act first (SL or the trailing level) and how far the price is from it, in
  // percent of the price: positive while the stop is not reached.
  function nearestStop(p) {
    const price = p.current_price || p.entry_price;
    const long = p.direction === "buy";
    let stop = null, kind = null;
    for (const [level, name] of [[p.sl_price, "SL"], [p.trailing_stop_price, "trail"]]) {
      if (level === null || level === undefined) continue;
      if (stop === null || (long ? cmp(level, stop) > 0 : cmp(level, stop) < 0)) [stop, kind] = [level, name];
    }
    if (stop === null) return null;
    const gap = long ? sub(price, stop) : sub(stop, price);
    return { stop, kind, percent: percentOf(gap, price, 2) };
  }

  function renderPositions(items, names, onClose) {
    fill("positions", items, "No open positions.", (tbody, p) => {
      const stop = nearestStop(p);
      const tps = p.take_profits && p.take_profits.length ? p.take_profits.length + " levels" : "";
      const near = stop && stop.percent !== null && cmp(stop.percent, "1") < 0 ? "near" : "";
      const tr = row(tbody, [
        { text: p.id }, { text: names.get(p.connection_id) || "#" + p.connection_id },
        { text: p.symbol }, { text: side(p.direction), cls: p.direction === "buy" ? "up" : "down" },
        money("quantity", p.quantity, 8), money("entry_price", p.entry_price, 6),
        money("current_price", p.current_price, 6),
        money("sl_price", p.sl_price, 6), { ...money("tp_price", p.tp_price, 6), sub: tps },
        { ...money("trailing_stop_price", p.trailing_stop_price, 6),
          sub: p.trailing_stop_percent ? cut(p.trailing_stop_percent, 2) + " %" : "" },
        { field: "stop_distance", value: stop ? stop.percent : null, cls: "num " + near,
          text: stop && stop.percent !== null ? stop.percent + " %" : "", sub: stop ? stop.kind : "" },
        money("pnl", p.pnl, 2, tone(p.pnl)), money("pnl_percentage", p.pnl_percentage, 2, tone(p.pnl)),
        { text: duration(p.opened_at), field: "open_for" }, { text: "" },
      ], { positionId: p.id, status: p.status });
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = p.status === "open" ? "Close…" : p.status;
      button.disabled = p.status !== "open";
      button.dataset.close = String(p.id);
      button.addEventListener("click", () => onClose(p));
      tr.lastChild.replaceChildren(button);
    });
  }

  function renderClosed(items, names) {
    fill("closed", items, "No closed trades.", (tbody, p) => row(tbody, [
      { text: p.id }, { text: names.get(p.connection_id) || "#" + p.connection_id },
      { text: p.symbol }, { text: side(p.direction) },
      money("initial_quantity", p.initial_quantity, 8), money("entry_price", p.entry_price, 6),
      money("close_price", p.close_price, 6), { text: p.closed_reason, field: "closed_reason" },
      money("pnl", p.pnl, 2, tone(p.pnl)), money("pnl_percentage", p.pnl_percentage, 2, tone(p.pnl)),
      money("fees", p.fees, 4), { text: time(p.closed_at), field: "closed_at" },
      { text: duration(p.opened_at, p.closed_at), field: "duration" },
    ], { positionId: p.id, reason: p.closed_reason || "" }));
  }

  function renderConnections(items) {
    fill("connections", items, "No accounts.", (tbody, c) => {
      const tr = row(tbody, [
        { text: c.id }, { text: c.name }, { text: c.adapter + (c.exchange ? " · " + c.exchange : "") },
        { text: c.status }, { text: time(c.last_tested_at) },
        { text: c.consecutive_failures, cls: "num" }, { text: c.last_error, cls: "wrap" },
      ], { connectionId: c.id, status: c.status });
      const badge = document.createElement("span");
      badge.className = "badge " + c.status;
      badge.textContent = c.status;
      const marks = [badge];
      // A drawdown stop-out (or the close-only switch): only closing trades are taken.
      if (c.stopped_out_at || c.close_only) {
        const stop = document.createElement("span");
        stop.className = "badge error";
        stop.dataset.stopOut = c.stopped_out_at ? "stopped" : "close-only";
        stop.textContent = c.stopped_out_at ? "stopped out" : "close-only";
        stop.title = c.stop_out_reason || "takes closing trades only";
        marks.push(" ", stop);
      }
      tr.cells[3].replaceChildren(...marks);
    });
  }

  function renderLogs(items, names) {
    fill("logs", items, "No orders yet.", (tbody, l) => row(tbody, [
      { text: l.id }, { text: names.get(l.connection_id) || "#" + l.connection_id },
      { text: l.purpose }, { text: l.symbol }, { text: l.direction }, { text: l.status },
      money("filled_quantity", l.filled_quantity, 8), money("average_price", l.average_price, 6),
      money("fee", l.fee, 4), { text: l.error_code, cls: "wrap" }, { text: time(l.created_at) },
    ], { logId: l.id, status: l.status }));
  }

  // The live feed: newest first, the last 30 events.
  function addEvent(frame) {
    const list = $("events");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const d = frame.data.data || {};
    const what = [
      d.position_id ? "position #" + d.position_id : d.execution_log_id ? "order #" + d.execution_log_id : "",
      d.connection_id ? "account #" + d.connection_id : "", d.symbol || "",
      d.closed_reason ? "reason " + d.closed_reason : "", d.pnl && frame.type === "position.closed" ? "PnL " + cut(d.pnl, 2) : "",
      d.error_code || d.last_error || "",
    ].filter(Boolean).join(" · ");
    const li = document.createElement("li");
    li.dataset.eventId = String(frame.data.id);
    li.dataset.type = frame.type;
    li.append(
      Object.assign(document.createElement("time"), { textContent: time(frame.data.created_at).slice(11) }),
      Object.assign(document.createElement("span"), { className: "type", textContent: frame.type }),
      Object.assign(document.createElement("span"), { textContent: what }),
    );
    list.prepend(li);
    while (list.children.length > 30) list.lastChild.remove();
  }

  function clearEvents() {
    $("events").replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "Nothing yet." }));
  }

  Dash.tables = { renderPositions, renderClosed, renderConnections, renderLogs, addEvent, clearEvents, time, side };
})();
