"""The live side: WebSocket connections, the hub of rooms, and the pure rules rooms apply."""
