// Starts Swagger UI on /docs. A file of its own, not an inline script: the page's
// Content-Security-Policy allows scripts from the service only ("script-src 'self'").
"use strict";
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: container.dataset.openapiUrl,
    domNode: container,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // The public validator would be asked about our schema: no calls off this host.
    validatorUrl: null,
  });
});
