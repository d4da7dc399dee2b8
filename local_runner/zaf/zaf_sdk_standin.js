// A stand-in for Zendesk's ZAF SDK (zaf_sdk.min.js), for local runs and the browser tests.
// It implements the documented client calls the sidebar app uses. What Zendesk does on its
// servers stays on a server here: client.request posts the request's description to the
// stand-in's own endpoint, which fills `{{setting.…}}` placeholders only for `secure: true`
// requests to the manifest's domainWhitelist, so secure settings never reach the browser.
(function () {
  "use strict";

  // The stand-in's endpoints live on the origin that served the page.
  const ENDPOINT = "/zaf";

  function readContext() {
    return fetch(`${ENDPOINT}/context`, { cache: "no-store" }).then((answer) => answer.json());
  }

  // The host side: what Zendesk would do to the app. Tests and the dev page drive it.
  const host = {
    handlers: {},
    resizes: [],
    trigger(name, data) {
      for (const handler of host.handlers[name] || []) handler(data);
    },
  };

  function jsonOrUndefined(text) {
    try {
      return JSON.parse(text);
    } catch (error) {
      return undefined;
    }
  }

  function makeClient() {
    const context = readContext();

    const client = {
      get(paths) {
        const wanted = Array.isArray(paths) ? paths : [paths];
        return context.then((ctx) => {
          const answer = { errors: {} };
          for (const path of wanted) {
            if (Object.prototype.hasOwnProperty.call(ctx.data, path)) {
              answer[path] = ctx.data[path];
            } else {
              answer.errors[path] = { message: `Could not find handler for: "${path}"` };
            }
          }
          return answer;
        });
      },
      metadata() {
        // Secure settings are not part of the settings the browser sees.
        return context.then((ctx) => JSON.parse(JSON.stringify(ctx.metadata)));
      },
      context() {
        return context.then((ctx) => JSON.parse(JSON.stringify(ctx.context)));
      },
      on(name, handler) {
        (host.handlers[name] = host.handlers[name] || []).push(handler);
      },
      off(name, handler) {
        host.handlers[name] = (host.handlers[name] || []).filter((h) => h !== handler);
      },
      has(name, handler) {
        return (host.handlers[name] || []).includes(handler);
      },
      invoke(name, ...args) {
        if (name === "resize") {
          const size = args[0] || {};
          host.resizes.push(size);
          return Promise.resolve({ errors: {} });
        }
        return Promise.resolve({ errors: { [name]: { message: `stand-in: no action ${name}` } } });
      },
      request(options) {
        const description = typeof options === "string" ? { url: options } : options;
        return fetch(`${ENDPOINT}/request`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(description),
        })
          .then((answer) => answer.json())
          .catch(() => ({ status: 0, statusText: "error", headers: {}, responseText: "" }))
          .then((proxied) => {
            const result = {
              status: proxied.status,
              statusText: proxied.statusText,
              headers: proxied.headers || {},
              responseText: proxied.responseText || "",
              responseJSON: jsonOrUndefined(proxied.responseText || ""),
            };
            if (proxied.status >= 200 && proxied.status < 300) {
              if (description.httpCompleteResponse) return result;
              return result.responseJSON !== undefined ? result.responseJSON : result.responseText;
            }
            // Like ZAF: a rejection carrying status, responseText and responseJSON.
            throw result;
          });
      },
    };

    // Like Zendesk, the app hears app.registered once the host knows it, then follows the
    // page's visibility as app.activated / app.deactivated.
    // (After the context arrives, which is after init() returned and the app listened.)
    context.then((ctx) =>
      host.trigger("app.registered", { metadata: ctx.metadata, context: ctx.context }),
    );
    document.addEventListener("visibilitychange", () => {
      host.trigger(document.hidden ? "app.deactivated" : "app.activated", {});
    });
    return client;
  }

  let instance = null;
  window.ZAFClient = {
    init() {
      instance = instance || makeClient();
      return instance;
    },
  };
  window.ZAFStandin = host;
})();
