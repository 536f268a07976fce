"""`cortex sync`: a device that follows a Git repository. Each round fetches the branch into a private mirror,
and applies its tip only when a trusted key signed it, it descends from what is applied (or the Cortexfile says
to follow rewrites) and its Cortexfile passes the checks a reload makes; then it swaps the file into place
atomically and the running server's hot reload does the rest. Anything else is refused and reported (the log,
`<data>-sync/state.json`, and /health); the device keeps serving the last good config."""
