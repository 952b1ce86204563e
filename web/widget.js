// The web-chat widget's one <script> tag on a clinic's site:
//   <script src="https://<the service's pages>/widget.js" data-practice="prc_…" defer></script>
// It defines one global, `VetchatWidget` ({ready, open(), close()}), and loads the widget (js/widget/main.js,
// an ES module beside this file) into a Shadow DOM of its own, so the page's styles and scripts and the
// widget's stay apart. Its settings are the tag's data-* attributes (docs/web.md "The web-chat widget").
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.VetchatWidget) return;
  var here = new URL(".", script.src);
  var data = script.dataset;
  var options = {
    practice: data.practice || "",
    api: (data.api || here.origin).replace(/\/+$/, ""),
    base: here.href,
    refreshSeconds: Number(data.refresh) || 30,
    auth: {
      mode: data.auth || (data.issuer ? "oauth" : "local"),
      issuer: data.issuer,
      client_id: data.clientId,
      scope: data.scope,
      token: data.token,
      authorization_endpoint: data.authorizationEndpoint,
      token_endpoint: data.tokenEndpoint,
      redirect_uri: data.redirectUri,
    },
  };
  var ready = import(new URL("js/widget/main.js", here).href).then(function (widget) {
    return widget.mount(options);
  });
  window.VetchatWidget = {
    ready: ready,
    open: function () {
      return ready.then(function (w) { w.open(); });
    },
    close: function () {
      return ready.then(function (w) { w.close(); });
    },
  };
})();
