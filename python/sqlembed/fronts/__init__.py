"""``serve --workers N`` transport: the engine link and its frames, the host-side connection
handler, and the proxy to the host's app. The processes themselves are composed in
``sqlembed.run.host`` and ``sqlembed.run.front``."""
