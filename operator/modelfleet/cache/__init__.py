"""The watch-fed cache (layer: cache): what reconcile passes read instead of the API server, the queue that decides
when a pass runs, and the expectations that keep a pass from acting on a cache behind its own writes."""
