"""`cortex bench`: measure a served appliance on its own hardware (or any OpenAI-compatible server at a URL)
with one workload, keep every run in the data folder's database, and render BenchCards from them.

Client side only: it talks HTTP to a server (one it starts with `cortex start`, or one at `--url`) and reads
that process's memory from /proc. It imports `cortexfile` to load the Cortexfile, never `images`, and needs
nothing beyond the runtime's dependencies (urllib3), so it runs on the device itself."""
