/*!
 * Paystream Checkout SDK: embed the hosted checkout in any page.
 *
 *   <script src="https://<paystream api>/checkout.js"></script>
 *   const checkout = new PaymentGateway({
 *     key: "key_live_...",            // the merchant's public API key (never the secret)
 *     orderId: "order_...",           // created by the merchant's backend: POST /api/v1/orders
 *     onSuccess: ({ paymentId, orderId, amount }) => {},
 *     onFailure: (error) => {},       // { code, description, paymentId? }
 *     onClose: () => {},
 *   });
 *   checkout.open();
 *
 * The checkout runs in an iframe on the API's origin, which the SDK takes from its own <script src>.
 * The page and the iframe talk only by postMessage: the SDK accepts messages only from that iframe's
 * window on the API's origin, and sends its first message (which tells the checkout who its parent
 * is) only to the API's origin. The modal is styled through element.style, which a merchant page's
 * Content-Security-Policy cannot block, and needs no stylesheet.
 */
(() => {
  "use strict";

  const MODAL_ID = "payment-gateway-modal";
  const PHONE_QUERY = "(max-width: 520px)";
  const Z_INDEX = "2147483000";
  const MESSAGE = {
    init: "checkout_init",
    success: "payment_success",
    failure: "payment_failed",
    closeRequested: "close_requested",
    resize: "resize",
  };
  // The desktop box before the checkout has said how tall it is, and the bounds it may ask for.
  const DEFAULT_HEIGHT_PX = 600;
  const MIN_HEIGHT_PX = 420;
  const MAX_HEIGHT_PX = 900;

  /** The API's origin: where this very script was loaded from. */
  function apiOrigin() {
    const candidates = [];
    if (document.currentScript && document.currentScript.src) candidates.push(document.currentScript.src);
    for (const script of document.querySelectorAll("script[src]")) {
      if (/\/checkout\.js(?:[?#]|$)/.test(script.src)) candidates.push(script.src);
    }
    for (const src of candidates) {
      try {
        const url = new URL(src, document.baseURI);
        if (url.protocol === "https:" || url.protocol === "http:") return url.origin;
      } catch (_) {
        /* not a URL: try the next */
      }
    }
    return null;
  }

  // Read once, while this script runs: document.currentScript is null afterwards.
  const API_ORIGIN = apiOrigin();

  function isCallback(value) {
    return value === undefined || value === null || typeof value === "function";
  }

  function checkId(name, value) {
    if (typeof value !== "string" || !/^[\x21-\x7e]{1,255}$/.test(value)) {
      throw new TypeError(`PaymentGateway: ${name} must be a non-empty string without spaces`);
    }
    return value;
  }

  function element(tag, attributes, style) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    Object.assign(node.style, style || {});
    return node;
  }

  function closeIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "18");
    svg.setAttribute("height", "18");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M6 6l12 12M18 6L6 18");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2.4");
    path.setAttribute("stroke-linecap", "round");
    path.setAttribute("fill", "none");
    svg.appendChild(path);
    return svg;
  }

  const STYLE = {
    root: {
      position: "fixed",
      inset: "0",
      zIndex: Z_INDEX,
      display: "flex",
      alignItems: "center",
      justifyContent: "center",
      margin: "0",
      padding: "0",
    },
    overlay: {
      position: "absolute",
      inset: "0",
      background: "rgba(15, 23, 42, 0.62)",
      backdropFilter: "blur(2px)",
      opacity: "0",
      transition: "opacity 160ms ease-out",
    },
    boxDesktop: {
      position: "relative",
      width: "440px",
      maxWidth: "calc(100vw - 32px)",
      height: `${DEFAULT_HEIGHT_PX}px`,
      maxHeight: "calc(100vh - 48px)",
      borderRadius: "16px",
      overflow: "hidden",
      background: "#ffffff",
      boxShadow: "0 24px 64px rgba(15, 23, 42, 0.35)",
      transform: "translateY(12px)",
      opacity: "0",
      transition: "transform 180ms ease-out, opacity 180ms ease-out, height 160ms ease-out",
    },
    boxPhone: {
      position: "relative",
      width: "100vw",
      maxWidth: "100vw",
      height: "100%",
      maxHeight: "100%",
      borderRadius: "0",
      overflow: "hidden",
      background: "#ffffff",
      boxShadow: "none",
    },
    iframe: {
      display: "block",
      width: "100%",
      height: "100%",
      border: "0",
      background: "#ffffff",
    },
    close: {
      position: "absolute",
      top: "14px",
      right: "14px",
      zIndex: "1",
      width: "34px",
      height: "34px",
      padding: "0",
      display: "flex",
      alignItems: "center",
      justifyContent: "center",
      border: "0",
      borderRadius: "50%",
      background: "rgba(255, 255, 255, 0.18)",
      color: "#ffffff",
      cursor: "pointer",
      lineHeight: "1",
      boxShadow: "none",
    },
    sentinel: { position: "absolute", width: "1px", height: "1px", overflow: "hidden", opacity: "0" },
  };

  class PaymentGateway {
    constructor(options) {
      const settings = options || {};
      this.key = checkId("key", settings.key);
      this.orderId = checkId("orderId", settings.orderId);
      for (const name of ["onSuccess", "onFailure", "onClose"]) {
        if (!isCallback(settings[name])) throw new TypeError(`PaymentGateway: ${name} must be a function`);
      }
      this.onSuccess = settings.onSuccess || null;
      this.onFailure = settings.onFailure || null;
      this.onClose = settings.onClose || null;
      this._open = null;
      this._onMessage = this._onMessage.bind(this);
      this._onKeydown = this._onKeydown.bind(this);
      this._onMedia = this._onMedia.bind(this);
    }

    get isOpen() {
      return this._open !== null;
    }

    /** The checkout's URL: the hosted page on the API's origin, in embedded mode. */
    checkoutUrl() {
      if (!API_ORIGIN) throw new Error("PaymentGateway: load checkout.js with a <script src> from the API");
      const url = new URL("/checkout", API_ORIGIN);
      url.searchParams.set("order_id", this.orderId);
      url.searchParams.set("key", this.key);
      url.searchParams.set("embedded", "true");
      return url.href;
    }

    open() {
      if (this._open) return;
      if (!document.body) {
        // Called from a <head> script: open once there is a body to put the modal in.
        document.addEventListener("DOMContentLoaded", () => this.open(), { once: true });
        return;
      }
      const existing = document.getElementById(MODAL_ID);
      if (existing) existing.remove(); // another instance's modal: only one checkout at a time
      const src = this.checkoutUrl();

      const root = element(
        "div",
        { id: MODAL_ID, "data-test-id": "payment-modal", role: "dialog", "aria-modal": "true", "aria-label": "Secure checkout" },
        STYLE.root,
      );
      const overlay = element("div", { "data-test-id": "payment-overlay", "aria-hidden": "true" }, STYLE.overlay);
      const box = element("div", {}, {});
      const close = element(
        "button",
        { type: "button", "data-test-id": "close-modal-button", "aria-label": "Close checkout", title: "Close" },
        STYLE.close,
      );
      close.appendChild(closeIcon());
      const iframe = element(
        "iframe",
        { "data-test-id": "payment-iframe", src, title: "Secure checkout", allow: "payment", referrerpolicy: "origin" },
        STYLE.iframe,
      );
      // Focus guards: Tab past the last element (or Shift+Tab before the first) wraps around.
      const startGuard = element("span", { tabindex: "0", "aria-hidden": "true" }, STYLE.sentinel);
      const endGuard = element("span", { tabindex: "0", "aria-hidden": "true" }, STYLE.sentinel);
      startGuard.addEventListener("focus", () => iframe.focus());
      endGuard.addEventListener("focus", () => close.focus());

      box.append(close, iframe);
      root.append(startGuard, overlay, box, endGuard);
      // A click on the overlay does not close it: a payer's stray tap must not hide a payment that
      // is going through. The close button and Escape do.
      close.addEventListener("click", () => this.close());
      iframe.addEventListener("load", () => this._greet());

      const media = window.matchMedia(PHONE_QUERY);
      this._open = {
        root,
        overlay,
        box,
        close,
        iframe,
        media,
        reported: new Set(),
        contentHeight: null,
        previousFocus: document.activeElement,
        previousOverflow: document.documentElement.style.overflow,
        inerted: [],
      };
      this._layout();
      media.addEventListener("change", this._onMedia);
      window.addEventListener("message", this._onMessage);
      document.addEventListener("keydown", this._onKeydown, true);

      document.body.appendChild(root);
      // Everything else on the page is out of reach while the checkout is open.
      for (const sibling of document.body.children) {
        if (sibling !== root && !sibling.inert) {
          sibling.inert = true;
          this._open.inerted.push(sibling);
        }
      }
      document.documentElement.style.overflow = "hidden";
      requestAnimationFrame(() => {
        if (!this._open) return;
        overlay.style.opacity = "1";
        box.style.opacity = "1";
        box.style.transform = "none";
      });
      close.focus({ preventScroll: true });
    }

    close() {
      const open = this._open;
      if (!open) return;
      this._open = null;
      window.removeEventListener("message", this._onMessage);
      document.removeEventListener("keydown", this._onKeydown, true);
      open.media.removeEventListener("change", this._onMedia);
      for (const sibling of open.inerted) sibling.inert = false;
      document.documentElement.style.overflow = open.previousOverflow;
      open.root.remove();
      if (open.previousFocus && typeof open.previousFocus.focus === "function") {
        open.previousFocus.focus({ preventScroll: true });
      }
      if (this.onClose) this.onClose();
    }

    _layout() {
      const { box, close, media, contentHeight } = this._open;
      const phone = media.matches;
      const opened = box.style.opacity === "1";
      box.removeAttribute("style");
      Object.assign(box.style, phone ? STYLE.boxPhone : STYLE.boxDesktop);
      if (!phone && contentHeight !== null) box.style.height = `${contentHeight}px`;
      if (opened && !phone) {
        box.style.opacity = "1";
        box.style.transform = "none";
      }
      close.style.top = phone ? "10px" : "14px";
      close.style.right = phone ? "10px" : "14px";
    }

    _onMedia() {
      if (this._open) this._layout();
    }

    /** The first message: it tells the checkout which origin its parent is (and is sent nowhere else). */
    _greet() {
      const open = this._open;
      if (!open || !open.iframe.contentWindow) return;
      open.iframe.contentWindow.postMessage({ type: MESSAGE.init, orderId: this.orderId }, API_ORIGIN);
    }

    _onKeydown(event) {
      if (event.key === "Escape" && this._open) {
        event.preventDefault();
        this.close();
      }
    }

    _onMessage(event) {
      const open = this._open;
      // Only the checkout we opened, on the API's origin, may speak to us: anything else is ignored.
      if (!open || event.origin !== API_ORIGIN || event.source !== open.iframe.contentWindow) return;
      const data = event.data;
      if (!data || typeof data !== "object" || typeof data.type !== "string") return;
      if (data.type === MESSAGE.success && typeof data.paymentId === "string") {
        if (open.reported.has(data.paymentId)) return;
        open.reported.add(data.paymentId);
        if (this.onSuccess) {
          this.onSuccess({ paymentId: data.paymentId, orderId: data.orderId, amount: data.amount });
        }
      } else if (data.type === MESSAGE.failure) {
        const error = data.error && typeof data.error === "object" ? data.error : { description: String(data.error) };
        const once = `failed:${error.paymentId || ""}:${error.code || ""}`;
        if (error.paymentId && open.reported.has(once)) return;
        open.reported.add(once);
        if (this.onFailure) this.onFailure(error);
      } else if (data.type === MESSAGE.closeRequested) {
        this.close();
      } else if (data.type === MESSAGE.resize && Number.isFinite(data.height)) {
        open.contentHeight = Math.round(Math.min(MAX_HEIGHT_PX, Math.max(MIN_HEIGHT_PX, data.height)));
        if (!open.media.matches) open.box.style.height = `${open.contentHeight}px`;
      }
    }
  }

  window.PaymentGateway = PaymentGateway;
})();
