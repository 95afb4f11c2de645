"""HTTP adapter: ``create_app(settings)``, routes, auth and problem+json errors."""
