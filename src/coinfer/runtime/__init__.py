"""The live runtime: the wire protocol, the edge server, the device client (DESIGN §5)."""
