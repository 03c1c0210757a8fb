"""stc.server: gRPC servicers, model repository and backend wiring."""
