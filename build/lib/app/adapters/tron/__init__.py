"""The Tron side of crypto-checkout: node client, log decoding, chain watcher, deposit addresses.

The platform reaches Tron only through a java-tron HTTP node (``node``: tronpy's ``AsyncTron``
over one httpx client). See docs/chain.md for the operator's view.
"""
