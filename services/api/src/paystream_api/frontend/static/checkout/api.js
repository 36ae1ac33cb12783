// The public checkout endpoints (`/api/v1/public/...`), which need only the merchant's public key.

export class ApiError extends Error {
  constructor(status, body, retryAfterS) {
    const error = (body && body.error) || {};
    super(error.description || `request failed (${status})`);
    this.status = status;
    this.code = error.code || null;
    this.field = error.field || null;
    this.retryAfterS = Number.isFinite(retryAfterS) ? retryAfterS : null;
  }
}

/** The request never got an answer (offline, DNS, a dropped connection). */
export class NetworkError extends Error {}

export function createApi(key) {
  async function call(method, path, { body, idempotencyKey } = {}) {
    const url = new URL(path, window.location.origin);
    url.searchParams.set("key", key);
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (_) {
      throw new NetworkError("network error");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, data, Number.parseInt(response.headers.get("Retry-After") || "", 10));
    }
    return data;
  }

  return {
    order: (orderId) => call("GET", `/api/v1/public/orders/${encodeURIComponent(orderId)}`),
    createPayment: (body, idempotencyKey) => call("POST", "/api/v1/public/payments", { body, idempotencyKey }),
    payment: (paymentId) => call("GET", `/api/v1/public/payments/${encodeURIComponent(paymentId)}`),
  };
}

/** A random Idempotency-Key (randomUUID needs a secure context; getRandomValues does not). */
export function newIdempotencyKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function" && window.isSecureContext) {
    return window.crypto.randomUUID();
  }
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
