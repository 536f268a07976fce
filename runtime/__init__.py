"""The server inside every appliance, wired from the top; each layer imports only the layers below it:

    main, app, wiring, pull   entry points: `cortex start` (the app factory and its hot-reload wiring), `cortex pull`
    v1                        the OpenAI-compatible endpoints (and Anthropic's Messages)
    update                    a device's signed A/B updates: the agent, the boot check (`cortex update`)
    http                      the edge: middleware, health, the console and /docs, listeners, refusals as OpenAI errors
    sync                      following a signed Git repository
    models                    the store, the engine, batching, the manager (knows nothing of HTTP)
    reload                    checking a changed Cortexfile and planning what it changes
    fetch                     downloads, and why a model's file cannot be had
    conversations             stored responses (previous_response_id, `cortex data`)
    ops                       logs (and reading them back), metrics and recent activity, durable writes, cortex.db,
                              systemd notifications

tests/runtime/test_layers.py holds the code to this (and to no import circle, typing-only ones included).
"""
