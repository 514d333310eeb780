"use strict";
// Exact arithmetic on the API's decimal strings, with BigInt. A figure shown on the page is never
// a float: sums (daily PnL over accounts, unrealised PnL) and the distance to a stop are exact,
// and then cut (toward zero) to the places shown. Floats only place pixels on the charts.
(() => {
  const Dash = (window.Dash = window.Dash || {});
  const PATTERN = /^(-?)(\d+)(?:\.(\d+))?$/;

  function parse(text) {
    const match = PATTERN.exec(String(text));
    if (!match) throw new Error("not a decimal: " + text);
    const fraction = match[3] || "";
    return { n: BigInt(match[1] + match[2] + fraction), s: fraction.length };
  }

  function scaled(value, scale) {
    return value.n * 10n ** BigInt(scale - value.s);
  }

  function format(n, s) {
    const negative = n < 0n;
    const digits = (negative ? -n : n).toString().padStart(s + 1, "0");
    const whole = digits.slice(0, digits.length - s);
    const fraction = digits.slice(digits.length - s).replace(/0+$/, "");
    const text = whole + (fraction ? "." + fraction : "");
    return negative && /[1-9]/.test(text) ? "-" + text : text;
  }

  function add(a, b) {
    const x = parse(a), y = parse(b), s = Math.max(x.s, y.s);
    return format(scaled(x, s) + scaled(y, s), s);
  }

  function sub(a, b) {
    const x = parse(a), y = parse(b), s = Math.max(x.s, y.s);
    return format(scaled(x, s) - scaled(y, s), s);
  }

  function cmp(a, b) {
    const x = parse(a), y = parse(b), s = Math.max(x.s, y.s);
    const d = scaled(x, s) - scaled(y, s);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }

  function sum(values) {
    return values.reduce((total, value) => (value === null ? total : add(total, value)), "0");
  }

  // a / b × 100, cut toward zero to `places` decimals; null when b is 0.
  function percentOf(a, b, places) {
    const x = parse(a), y = parse(b);
    if (y.n === 0n) return null;
    const numerator = x.n * 10n ** BigInt(y.s + places) * 100n;
    return format(numerator / (y.n * 10n ** BigInt(x.s)), places);
  }

  // The decimal string cut (not rounded) to `places`: "12.3456" -> "12.34"; "—" for null.
  function cut(value, places) {
    if (value === null || value === undefined) return "—";
    const [whole, fraction = ""] = String(value).split(".");
    const kept = fraction.slice(0, places).replace(/0+$/, "");
    const text = kept ? whole + "." + kept : whole;
    return /^-0$/.test(text) ? "0" : text;
  }

  // "up", "down" or "" by the sign of a decimal string.
  function tone(value) {
    if (value === null || value === undefined) return "";
    const text = String(value);
    if (!/[1-9]/.test(text)) return "";
    return text.startsWith("-") ? "down" : "up";
  }

  Dash.dec = { add, sub, cmp, sum, percentOf, cut, tone };
})();
