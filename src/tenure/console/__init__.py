"""The web console (docs/console.md): server-rendered pages over the same services
the HTTP API uses, for operators, support and auditors in a browser."""
