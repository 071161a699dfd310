"""The age model and its GPU workers: plain Python + torch, never Django or the portal."""
