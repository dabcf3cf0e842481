// Starts Swagger UI on /docs. A file of its own, not an inline script: the page's CSP allows
// scripts from the vault only (script-src 'self').
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: false,
    oauth2RedirectUrl: window.location.origin + root.getAttribute("data-oauth2-redirect-url"),
    presets: [SwaggerUIBundle.presets.apis],
  });
});
