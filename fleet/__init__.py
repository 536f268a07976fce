"""`cortex fleet`: the operator's view of many devices, asked over their own API (no agent, no central server)."""
