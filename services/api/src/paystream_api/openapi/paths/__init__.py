"""The document's paths, one module per group of routes; each exports `PATHS` (see
`paystream_api.openapi.document.GROUPS`)."""
