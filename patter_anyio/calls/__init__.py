"""The calls: webhooks turned into calls, and each call run.

The webhook application answers carriers with what ``patter_core``'s flows
decide; the runtime admits a stream and builds the call's bridge and
provider session (chosen by ``patter_core.providers``); the call runner moves
bytes between the carrier socket, the provider and the bridge, and runs the
tasks the bridge asks for (tools, callbacks, REST requests, recordings).
Every decision is the core's; this package does the I/O and keeps time.
"""
