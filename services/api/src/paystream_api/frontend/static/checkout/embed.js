// Talking to the page that embeds the checkout (the SDK's modal), by postMessage only.
//
// The parent's origin is learnt from its first message (`checkout_init`), accepted only from the
// window that framed this page; from then on messages go to that origin alone and messages from
// anywhere else are ignored. Until the parent has spoken, outgoing messages wait in a queue: they
// are never sent to "*".

const INIT = "checkout_init";

export function createParentChannel(embedded) {
  const framed = embedded && window.parent !== window;
  let parentOrigin = null;
  const waiting = [];

  function send(message) {
    window.parent.postMessage(message, parentOrigin);
  }

  if (framed) {
    window.addEventListener("message", (event) => {
      if (event.source !== window.parent) return; // another frame, a popup, or this page itself
      if (parentOrigin === null) {
        const data = event.data;
        if (!data || typeof data !== "object" || data.type !== INIT) return;
        if (typeof event.origin !== "string" || !/^https?:\/\//.test(event.origin)) return;
        parentOrigin = event.origin;
        while (waiting.length > 0) send(waiting.shift());
      }
      // Nothing else is expected from the parent yet; whatever else it sends changes nothing.
    });
  }

  return {
    framed,
    get parentOrigin() {
      return parentOrigin;
    },
    /** Post `message` to the parent once its origin is known (queued until then). */
    post(message) {
      if (!framed) return;
      if (parentOrigin === null) waiting.push(message);
      else send(message);
    },
  };
}
