"""The ModelFleet gateway: one small proxy per namespace in front of the model servers (docs/traffic.md)."""
