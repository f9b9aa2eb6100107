"""The sandbox: a local Outkit-compatible server (`outkit serve`).

Modules: `app` (the API: routing, validation, messages), `server` (the stdlib HTTP layer),
`store` (SQLite), `auth` (signature checks), `templates` (projects and templates from
files), `render` (Handlebars + CSS inlining), `render_pool` (render processes with limits),
`worker` (the message lifecycle), `delivery` (Maildir outbox and SMTP), `faults` (rate
limit, failures, latency), `keys` (the sandbox's API keys).
"""
