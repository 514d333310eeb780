"use strict";
// The API, with the key in an Authorization header and nowhere else, and the live event stream.
// A browser's EventSource cannot send that header, and a key in a URL would reach logs and
// proxies: the stream is read with fetch and a reader instead, parsed as server-sent events,
// and resumed with Last-Event-ID after a drop.
(() => {
  const Dash = (window.Dash = window.Dash || {});
  let apiKey = null;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function request(method, path, body) {
    const headers = { Authorization: "Bearer " + apiKey, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) throw new ApiError(401, "the API key was refused");
    if (!response.ok) {
      let detail = path + " answered " + response.status;
      try {
        const problem = await response.json();
        if (problem && problem.detail) detail = problem.detail + " (" + problem.code + ")";
      } catch (_) { /* not problem+json */ }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  // One server-sent events stream: `onEvent(frame)` for each event, `onState(state)` with
  // "on" (connected), "retrying" or "off". Reconnects after `retry` ms (the server sends 2000).
  class EventStream {
    constructor(onEvent, onState) {
      this.onEvent = onEvent;
      this.onState = onState;
      this.lastId = null;
      this.retry = 2000;
      this.controller = null;
      this.generation = 0;  // a loop runs while its generation is the current one
    }

    start() {
      this.stop();
      this.loop(this.generation);
    }

    stop() {
      this.generation += 1;
      if (this.controller) this.controller.abort();
      this.controller = null;
      this.onState("off");
    }

    async loop(generation) {
      while (generation === this.generation) {
        const controller = (this.controller = new AbortController());
        try {
          await this.read(controller.signal);
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) {
            if (generation === this.generation) this.stop();
            return;
          }
        }
        if (generation !== this.generation) return;
        this.onState("retrying");
        await new Promise((resolve) => setTimeout(resolve, this.retry));
      }
    }

    async read(signal) {
      const headers = { Authorization: "Bearer " + apiKey, Accept: "text/event-stream" };
      if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
      const response = await fetch("/api/v1/events", {
        headers, signal, cache: "no-store", credentials: "omit",
      });
      if (!response.ok) throw new ApiError(response.status, "events answered " + response.status);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
        buffer = blocks.pop();
        for (const block of blocks) this.dispatch(block);
      }
    }

    dispatch(block) {
      let type = "message", id = null;
      const data = [];
      for (const line of block.split(/\r\n|\n|\r/)) {
        if (line.startsWith(":")) {
          if (line.startsWith(": connected")) this.onState("on");
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
        else if (field === "id") id = value;
        else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
      }
      if (id !== null) this.lastId = id;
      if (!data.length) return;
      try {
        this.onEvent({ id, type, data: JSON.parse(data.join("\n")) });
      } catch (_) { /* a frame that is not JSON is not ours */ }
    }
  }

  Dash.api = {
    setKey(key) { apiKey = key; },
    hasKey() { return apiKey !== null; },
    get: (path) => request("GET", path),
    post: (path, body) => request("POST", path, body),
    EventStream,
    ApiError,
  };
})();
