"""The HTTP client stack every command uses (on urllib3).

- `rules`: the one rule for proxies, CA certificates and TLS;
- `transport`: the urllib3 pool: keep-alive, whole-request deadlines (`deadline`), answer
  size limit, no redirects, failures sorted into sent / unsent;
- `ratelimit`: pacing a batch (`--rate`) and adapting to 429s;
- retries and signing live in `outkit_cli.client`, which sends through `transport`.

Importing this package costs nothing: urllib3 and ssl load when a transport is built.
"""
