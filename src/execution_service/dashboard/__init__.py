"""A read-only operator page at /dashboard: one static HTML file, no build step, no CDN."""
