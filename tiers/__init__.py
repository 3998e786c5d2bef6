"""Tiers: the fabric between respcache servers (edge, relay, relief).

Plugs into respcache through the `respcache.extensions` entry point (tiers.plugin:create);
respcache itself never imports this package.
"""
