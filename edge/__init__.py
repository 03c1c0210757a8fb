"""stc.edge: edge-node agent (hardware probe, bundle store, deploy/status client)."""
