// Swagger UI over this service's own OpenAPI document. A file rather than an inline script, so
// the page's Content-Security-Policy can refuse every inline script.
"use strict";
window.ui = SwaggerUIBundle({
  // Relative to the page (/docs): /openapi.json, or <prefix>/openapi.json behind a proxy.
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  // Without this Swagger UI shows a badge fetched from validator.swagger.io, sending it the
  // document's URL: no request leaves for another host.
  validatorUrl: null,
  // The bare layout: the standalone preset's top bar loads any URL typed into it.
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // The api-key typed into "Authorize" stays in this page's memory, never in localStorage.
  persistAuthorization: false,
});
