"""Pure domain: event types and schemas, state rows, commands -> events, the projector."""
