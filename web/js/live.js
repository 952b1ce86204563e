// Live updates for the inbox and the web-chat widget (API.md "Live updates"): a fresh single-use ticket
// (POST /realtime/tickets) for every connection, the WebSocket it names, and its frames handed to the page.
// Frames are nudges, not the truth: after every (re)connect the page re-reads what it shows (`onSync`, which
// asks the REST API for what came after the last seq it has), so a frame lost while the socket was down costs
// nothing. While the socket is down (or cannot connect at all: a proxy that refuses WebSockets) the page is
// refreshed every `pollSeconds` instead, and a new connection is tried after a growing pause.

const RETRY_SECONDS = [1, 2, 5, 10, 30];
// API Gateway closes a WebSocket that says nothing for 10 minutes; a word now and then keeps it open.
const KEEP_ALIVE_MS = 9 * 60_000;

export function liveUpdates({ ticket, onFrame, onSync, onState, pollSeconds = 15 }) {
  let socket = null;
  let stopped = false;
  let failures = 0;
  let retryTimer = null;
  let pollTimer = null;
  let keepAlive = null;

  const state = (name) => onState?.(name);

  function poll(on) {
    if (on && !pollTimer) pollTimer = setInterval(() => onSync(), pollSeconds * 1000);
    if (!on && pollTimer) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  function retry() {
    if (stopped) return;
    poll(true);
    state("polling");
    const wait = RETRY_SECONDS[Math.min(failures, RETRY_SECONDS.length - 1)];
    failures += 1;
    retryTimer = setTimeout(connect, wait * 1000);
  }

  async function connect() {
    retryTimer = null;
    if (stopped) return;
    let url;
    try {
      ({ url } = await ticket());
    } catch {
      retry();
      return;
    }
    // The ticket rides in the socket's URL (single use, 60 seconds): that URL is never shown nor kept.
    const ws = new WebSocket(url);
    socket = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      failures = 0;
      poll(false);
      state("live");
      keepAlive = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("{}"), KEEP_ALIVE_MS);
      onSync();
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      onFrame(frame);
    });
    ws.addEventListener("close", () => {
      clearInterval(keepAlive);
      if (socket === ws) socket = null;
      if (stopped) return;
      // A socket that opened and later dropped is tried again after the shortest pause; one that never
      // opened waits longer each time.
      if (opened) failures = 0;
      retry();
    });
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      poll(false);
      socket?.close();
    },
    // A new ticket and socket now (a page that signs in after start, say).
    restart() {
      socket?.close();
    },
  };
}
