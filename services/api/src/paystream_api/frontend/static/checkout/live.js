// Following a payment until it settles: live over the notifier (Socket.IO, `payment:completed` for
// the order's invoice, with the checkout's token, which may watch that order only), and by polling
// `GET /api/v1/public/payments/{id}` whenever the socket cannot connect, is refused, or drops.
//
// Polling: every 2 s for the first minute (production payments settle in 5 to 10 s), then every
// 5 s, and after 3 minutes the payer is told the bank is slow and offered "Check again" rather
// than a page that polls forever. A 429 stretches the next wait to its Retry-After.

const FINAL = new Set(["success", "failed"]);
const SOCKET_TIMEOUT_MS = 5000;
const POLL_FAST_MS = 2000;
const POLL_SLOW_MS = 5000;
const FAST_FOR_MS = 60_000;
const GIVE_UP_MS = 180_000;

/**
 * Follow `payment` until it is final; `onFinal(payment)` is called once. `onChannel("socket" |
 * "polling")` says how it is followed; `onSlow()` says polling gave up for now (call
 * `checkAgain()` to resume). `stop()` ends everything.
 */
export function followPayment({ api, payment, notifier, onFinal, onChannel = () => {}, onSlow = () => {} }) {
  let finished = false;
  let socket = null;
  let polling = false;
  let pollTimer = null;
  let socketGuard = null;
  let pollStarted = 0;

  function closeSocket() {
    clearTimeout(socketGuard);
    if (socket) {
      socket.off();
      socket.close();
      socket = null;
    }
  }

  function stop() {
    finished = true;
    clearTimeout(pollTimer);
    closeSocket();
  }

  function finish(settled) {
    if (finished) return;
    stop();
    onFinal(settled);
  }

  async function checkOnce() {
    try {
      const current = await api.payment(payment.id);
      if (current && FINAL.has(current.status)) finish(current);
      return null;
    } catch (error) {
      return error;
    }
  }

  async function poll() {
    if (finished) return;
    let wait = Date.now() - pollStarted < FAST_FOR_MS ? POLL_FAST_MS : POLL_SLOW_MS;
    const error = await checkOnce();
    if (finished) return;
    if (error && error.status === 429 && error.retryAfterS) wait = Math.max(wait, error.retryAfterS * 1000);
    if (Date.now() - pollStarted >= GIVE_UP_MS) {
      polling = false;
      onSlow();
      return;
    }
    pollTimer = setTimeout(poll, wait);
  }

  function startPolling() {
    if (finished || polling) return;
    closeSocket();
    polling = true;
    pollStarted = Date.now();
    onChannel("polling");
    poll();
  }

  function connect() {
    if (typeof window.io !== "function" || !notifier || !notifier.url || !notifier.token) {
      startPolling();
      return;
    }
    socket = window.io(notifier.url, {
      auth: { token: notifier.token },
      reconnection: false, // a lost socket falls back to polling instead of retrying forever
      timeout: SOCKET_TIMEOUT_MS,
    });
    socket.on("connect", () => {
      socket
        .timeout(SOCKET_TIMEOUT_MS)
        .emit("subscribe:payment-events", { invoiceId: payment.order_id }, (error, ack) => {
          if (finished) return;
          if (error || !ack || !ack.ok) {
            startPolling();
            return;
          }
          onChannel("socket");
          // It may have settled before the subscription: read it once now that nothing can be missed.
          checkOnce();
        });
    });
    socket.on("payment:completed", (event) => {
      if (!event || event.paymentId !== payment.id) return; // another attempt at the same order
      const status = String(event.status || "").toLowerCase();
      if (!FINAL.has(status)) return;
      finish({
        ...payment,
        status,
        error_code: event.errorCode || null,
        error_description: event.errorDescription || null,
      });
    });
    socket.on("connect_error", startPolling);
    socket.on("disconnect", () => {
      if (!finished) startPolling();
    });
    socketGuard = setTimeout(() => {
      if (socket && !socket.connected) startPolling();
    }, SOCKET_TIMEOUT_MS + 1000);
  }

  if (FINAL.has(payment.status)) {
    finish(payment);
  } else {
    connect();
  }

  return {
    stop,
    checkAgain() {
      if (!finished) startPolling();
    },
  };
}
