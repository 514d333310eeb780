"""Where the service may connect out to, for every URL a tenant gives us.

A tenant chooses `api_base_url` (ccxt and mtapi execution connections, ccxt data connections)
and webhook URLs, and the service connects there from inside the deployment: unchecked, that is
a server-side request forgery into our own network. `policy` decides which addresses may be
reached (checked when the URL is written and again when it is connected to, with the checked
address pinned, so a name cannot be rebound in between); `http` is an httpx transport that
connects only to checked addresses. ccxt's aiohttp sessions get the same pinning in
`exchanges/ccxt/network.py`.
"""
